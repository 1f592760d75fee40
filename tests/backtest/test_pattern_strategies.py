"""A strategy that trades on pattern signals gets them inline in the backtest, bar by bar."""

from __future__ import annotations

from pathlib import Path

from alphaloop.backtest import run_backtest
from alphaloop.data import load_bars
from alphaloop.patterns import PatternEngine
from alphaloop.strategy import Strategy

GOOG = Path(__file__).resolve().parents[1] / "fixtures" / "market" / "GOOG_daily.csv"


class FollowEmaCross(Strategy):
    name = "follow_ema_cross"

    def init(self, ctx):
        self.seen = []

    def pattern_detectors(self):
        return [("ema_cross", {"fast": 5, "slow": 20})]

    def on_signal(self, ctx, signal):
        assert signal.bar == ctx.i  # the signal belongs to the bar the strategy is on
        self.seen.append((signal.bar, str(signal.direction)))
        ctx.close_position()
        (ctx.buy if signal.direction == "long" else ctx.sell)(fraction=0.5)

    def on_bar(self, ctx):
        pass


def test_signals_arrive_on_their_bar_and_orders_follow():
    df = load_bars(GOOG)
    strat = FollowEmaCross()
    res = run_backtest(strat, df)
    expected = [(s.bar, str(s.direction)) for s in PatternEngine([("ema_cross", {"fast": 5, "slow": 20})]).run(df, df.attrs["instrument"])]
    assert strat.seen == expected and len(expected) > 20
    # every signal but the last (sent on the final bar, cancelled) opened a trade on the next bar
    entries = res.trades["entry_bar"].tolist() + res.open_trades["entry_bar"].tolist()
    assert sorted(entries) == [b + 1 for b, _ in expected if b + 1 < len(df)]
