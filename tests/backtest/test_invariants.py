"""Accounting invariants and the no-look-ahead guarantee, under random strategies and orders.

Equity is recomputed here from the fills alone (cash = initial - sum(size * price + commission),
position = sum of sizes) and must equal the engine's equity curve at every bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaloop.backtest import run_backtest
from alphaloop.core.errors import LookAheadError, OrderError
from alphaloop.execution import BrokerConfig, Commission, FixedSlippage, VolumeShareSlippage
from alphaloop.strategy import Strategy


def make_bars(n: int, seed: int, instrument: str = "X", start: str = "2022-01-03") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.005, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.01, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.01, n)))
    index = pd.date_range(start, periods=n, freq="h", tz="UTC", name="time")
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                       "volume": rng.integers(100, 5000, n).astype(float)}, index=index)
    df.attrs["instrument"] = instrument
    return df


class RandomTrader(Strategy):
    """Sends random market, limit, stop, stop-limit and bracket orders, and records what it sent."""

    name = "random_trader"
    params = {"seed": 0, "rate": 0.2}

    def init(self, ctx):
        self.rng = np.random.default_rng(self.seed)
        self.sent = {}  # order id -> bar it was sent on
        self.fills = []

    def on_bar(self, ctx):
        rng = self.rng
        if rng.random() > self.rate:
            return
        for instrument in ctx.instruments:
            close = ctx.history("close", instrument)
            if not close:
                continue
            price = close[-1]
            kind = rng.integers(0, 6)
            side = ctx.buy if rng.random() < 0.5 else ctx.sell
            sign = 1 if side == ctx.buy else -1
            size = float(rng.integers(1, 20))
            try:
                if kind == 0:
                    order = side(size, instrument=instrument)
                elif kind == 1:
                    order = side(fraction=float(rng.uniform(0.05, 0.5)), instrument=instrument)
                elif kind == 2:
                    order = side(size, limit=price * (1 - sign * 0.01), instrument=instrument,
                                 tif=str(rng.choice(["gtc", "day", "ioc"])))
                elif kind == 3:
                    order = side(size, stop=price * (1 + sign * 0.01), instrument=instrument)
                elif kind == 4:
                    order = side(size, sl=price * (1 - sign * 0.03), tp=price * (1 + sign * 0.03),
                                 instrument=instrument)
                else:
                    order = ctx.close_position(instrument)
            except OrderError:
                continue  # e.g. a bracket on the wrong side after a gap: refused, never queued
            if order is not None:
                self.sent[order.id] = ctx.history("close", instrument).__len__() - 1

    def on_fill(self, ctx, fill):
        self.fills.append(fill)


def equity_from_fills(res, data: dict[str, pd.DataFrame], initial: float) -> pd.DataFrame:
    fills = res.fills
    steps = res.equity.index
    cash = np.full(len(steps), initial)
    value = np.zeros(len(steps))
    for name, df in data.items():
        f = fills[fills["instrument"] == name]
        step_of_bar = steps.get_indexer(df.index)
        flows = np.zeros(len(steps))
        qty = np.zeros(len(steps))
        np.add.at(flows, step_of_bar[f["bar"].to_numpy()], -(f["size"] * f["price"] + f["commission"]).to_numpy())
        np.add.at(qty, step_of_bar[f["bar"].to_numpy()], f["size"].to_numpy())
        cash += np.cumsum(flows)
        close = df["close"].reindex(steps).ffill().fillna(0.0).to_numpy()
        value += np.cumsum(qty) * close
    return pd.DataFrame({"cash": cash, "value": value, "equity": cash + value}, index=steps)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(20, 250), two=st.booleans(),
       fill_on=st.sampled_from(["next_open", "close"]), rate=st.sampled_from([0.0, 0.001, 0.01]),
       slip=st.sampled_from(["none", "fixed", "volume"]), spread=st.sampled_from([0.0, 0.001]))
def test_cash_plus_positions_is_equity_and_nothing_fills_early(seed, n, two, fill_on, rate, slip, spread):
    data = {"X": make_bars(n, seed, "X")}
    if two:  # a second instrument on a shifted, sparser clock
        data["Y"] = make_bars(max(5, n // 2), seed + 1, "Y", start="2022-01-03 05:00").iloc[::2]
    slippage = {"none": None, "fixed": FixedSlippage(5.0), "volume": VolumeShareSlippage(0.05, 0.1)}[slip]
    config = BrokerConfig(initial_cash=100_000.0, commission=Commission(rate=rate, fixed=0.5 if rate else 0.0),
                          fill_on=fill_on, spread=spread, **({"slippage": slippage} if slippage else {}))
    strat = RandomTrader(seed=seed, rate=0.3)
    res = run_backtest(strat, data if two else data["X"], config)

    eq = res.equity
    np.testing.assert_allclose(eq["cash"] + eq["position_value"], eq["equity"], rtol=1e-9, atol=1e-6)
    if eq["equity"].iloc[-1] > 0:  # (a ruined account is zeroed by rule)
        rebuilt = equity_from_fills(res, data, 100_000.0)
        np.testing.assert_allclose(eq["equity"], rebuilt["equity"], rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(eq["cash"], rebuilt["cash"], rtol=1e-9, atol=1e-6)

    # every fill of an order the strategy sent happened after it was sent (or on its close)
    assert len(strat.fills) == len(res.fills)
    for fill in strat.fills:
        if fill.order_id in strat.sent:
            sent_bar = strat.sent[fill.order_id]
            assert fill.bar > sent_bar or (fill_on == "close" and fill.bar == sent_bar)
    # fills happen at prices the bar traded (when no slippage/spread moves them)
    if slip == "none" and spread == 0:
        for name, df in data.items():
            f = res.fills[res.fills["instrument"] == name]
            bars = df.iloc[f["bar"].to_numpy()]
            assert (f["price"].to_numpy() <= bars["high"].to_numpy() * (1 + 1e-12)).all()
            assert (f["price"].to_numpy() >= bars["low"].to_numpy() * (1 - 1e-12)).all()
    # the trade list accounts for the whole P&L: closed trades' pnl (both commissions in) plus the
    # lots still open, marked at the last close, less their entry commission
    if config.commission.fixed == 0 and res.final_equity > 0:
        open_pnl = 0.0
        for row in res.open_trades.itertuples():
            last = data[row.instrument]["close"].iloc[-1]
            open_pnl += row.size * (last - row.entry_price) - config.commission.cost(row.size, row.entry_price)
        assert res.trades["pnl"].sum() + open_pnl == pytest.approx(res.final_equity - 100_000.0, abs=1e-6)


class Peeker(Strategy):
    name = "peeker"

    def init(self, ctx):
        ctx.indicator(lambda x: np.r_[x[1:], np.nan], "close")  # tomorrow's close

    def on_bar(self, ctx):
        pass


def test_an_indicator_that_reads_the_future_is_refused():
    with pytest.raises(LookAheadError, match="future"):
        run_backtest(Peeker(), make_bars(50, 1))


class HistoryProbe(Strategy):
    name = "probe"

    def init(self, ctx):
        self.lengths = []
        self.last = []

    def on_bar(self, ctx):
        self.lengths.append(len(ctx.close))
        self.last.append(ctx.close[-1])


def test_histories_hold_exactly_the_bars_seen_so_far():
    df = make_bars(40, 3)
    probe = HistoryProbe()
    run_backtest(probe, df)
    assert probe.lengths == list(range(1, 41))
    assert probe.last == df["close"].tolist()


class LateHistory(Strategy):
    """Asks for a history for the first time from inside on_fill."""

    name = "late_history"

    def init(self, ctx):
        self.hist = None

    def on_bar(self, ctx):
        if ctx.i == 2:
            ctx.buy(1)
        if self.hist is not None:
            assert self.hist == ctx.open  # same bars, none twice

    def on_fill(self, ctx, fill):
        if self.hist is None:
            self.hist = ctx.history("open")
            assert len(self.hist) == fill.bar  # the fill's bar is not in the histories yet


def test_a_history_first_asked_for_in_on_fill_holds_each_bar_once():
    df = make_bars(10, 4)
    strat = LateHistory()
    run_backtest(strat, df)
    assert strat.hist == df["open"].tolist()
