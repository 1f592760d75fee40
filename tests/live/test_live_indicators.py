"""Live indicator histories equal the backtester's precomputed ones bit for bit: every vectorised
indicator with a streaming twin, declared before the first bar or late; other functions through the
O(n) recomputation; feature rows too."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from live_helpers import EURUSD, GOOG

import alphaloop.indicators as ind
from alphaloop.backtest import run_backtest
from alphaloop.data import load_bars
from alphaloop.live import STREAMING_TWINS, EmbeddedRunner
from alphaloop.strategy import Strategy

# every indicator with a streaming twin, with non-default parameters where it has them
CALLS = {
    "sma": (ind.sma, ("close", 7), {}),
    "ema": (ind.ema, ("close",), {"n": 9}),
    "wma": (ind.wma, ("close", 6), {}),
    "wma_long": (ind.wma, ("high", 41), {}),
    "rsi": (ind.rsi, ("close", 5), {}),
    "macd": (ind.macd, ("close", 3, 8, 4), {}),
    "stoch": (ind.stoch, ("high", "low", "close", 5, 3, 2), {}),
    "adx": (ind.adx, ("high", "low", "close", 4), {}),
    "true_range": (ind.true_range, ("high", "low", "close"), {}),
    "atr": (ind.atr, ("high", "low", "close", 5), {}),
    "bbands": (ind.bbands, ("close", 6, 2.0, 1.0), {}),
    "volatility": (ind.volatility, ("close", 5), {"annualize": True}),
    "volatility_ddof0": (ind.volatility, ("open", 3), {"ddof": 0}),
    "zscore": (ind.zscore, ("close", 6), {"ddof": 1}),
    "obv": (ind.obv, ("close", "volume"), {}),
    "vwap": (ind.vwap, ("high", "low", "close", "volume"), {}),
    "vwap_day": (ind.vwap, ("high", "low", "close", "volume", "time", "D"), {}),
    "vwap_fx_day": (ind.vwap, ("high", "low", "close", "volume", "time"), {"anchor": "D", "offset": "22h"}),
    "vwap_std_week": (ind.vwap_std, ("high", "low", "close", "volume", "time", "W"), {}),
    "vwap_bands_month": (ind.vwap_bands, ("high", "low", "close", "volume", "time"), {"anchor": "M", "nbdev": 1.5}),
}


def rolling_max(x, n=5):  # no streaming twin: recomputed over the history each bar
    return pd.Series(x).rolling(n).max().to_numpy()


def two_outputs(high, low):
    return high - low, (high + low) / 2


class Declares(Strategy):
    name = "declares"
    params = {"late": 60}

    def init(self, ctx):
        self.hists = {k: ctx.indicator(fn, *args, **kw) for k, (fn, args, kw) in CALLS.items()}
        self.hists["rolling_max"] = ctx.indicator(rolling_max, "close", n=4)
        self.hists["two_outputs"] = ctx.indicator(two_outputs, "high", "low")
        self.lengths = []

    def on_bar(self, ctx):
        if ctx.i == self.late:  # declared mid-run: filled for the bars already seen
            self.hists["late_ema"] = ctx.indicator(ind.ema, "close", 12)
            self.hists["late_bbands"] = ctx.indicator(ind.bbands, "close", 10)
            self.hists["late_custom"] = ctx.indicator(rolling_max, "low", n=3)
        self.lengths.append({k: len(v[0] if isinstance(v, tuple) else v) for k, v in self.hists.items()})


def identical(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True) and \
        np.array_equal(np.signbit(a), np.signbit(b))


def test_every_streaming_twin_is_covered_here():
    assert {fn for fn, _, _ in CALLS.values()} == set(STREAMING_TWINS)


@pytest.mark.parametrize("path", [GOOG, EURUSD], ids=["GOOG_daily", "EURUSD_1h"])
def test_live_histories_equal_the_backtest_bit_for_bit(path):
    df = load_bars(path).iloc[:1500]
    bt, lv = Declares(), Declares()
    run_backtest(bt, df)
    runner = EmbeddedRunner(lv, df)
    runner.run()
    assert runner.summary.errors == {}
    assert bt.lengths == lv.lengths  # every history grew one value per bar, in both
    assert set(bt.hists) == set(lv.hists)
    for key, hist in bt.hists.items():
        outs_bt = hist if isinstance(hist, tuple) else (hist,)
        outs_lv = lv.hists[key] if isinstance(lv.hists[key], tuple) else (lv.hists[key],)
        assert len(outs_bt) == len(outs_lv), key
        for j, (a, b) in enumerate(zip(outs_bt, outs_lv)):
            assert len(a) == len(df), key
            assert identical(a, b), f"{key}[{j}] differs at {np.flatnonzero(~np.isclose(a, b, equal_nan=True))[:5]}"
    # the streaming paths really were used (not the O(n) fallback)
    feed = runner.engine.ctx._feeds[runner.instruments[0]]
    streaming = {ind_.label for ind_ in feed.indicators.values() if ind_.streaming}
    assert {fn.__name__ for fn in STREAMING_TWINS} <= streaming
    assert not any(i.streaming for i in feed.indicators.values() if i.label in ("rolling_max", "two_outputs"))


def test_feature_rows_equal_the_backtest():
    from alphaloop.ml.features import make_features

    class Features(Strategy):
        name = "features"

        def init(self, ctx):
            self.rows = []

        def on_bar(self, ctx):
            if ctx.i >= 40 and ctx.i % 7 == 0:
                self.rows.append(ctx.feature_row(make_features))

    df = load_bars(GOOG).iloc[:400]
    bt, lv = Features(), Features()
    run_backtest(bt, df)
    EmbeddedRunner(lv, df).run()
    assert len(bt.rows) == len(lv.rows) > 40
    for a, b in zip(bt.rows, lv.rows):
        assert identical(a, b)


def test_a_capped_feature_window_sees_only_the_trailing_bars():
    seen = []

    def width(frame):
        seen.append(len(frame))
        return pd.DataFrame({"n": np.arange(len(frame), dtype=float)}, index=frame.index)

    class Probe(Strategy):
        name = "probe"

        def on_bar(self, ctx):
            ctx.feature_row(width)
            ctx.feature_row(width)  # computed once per bar

    EmbeddedRunner(Probe(), load_bars(GOOG).iloc[:50], feature_window=20).run()
    assert seen == [min(k + 1, 20) for k in range(50)]


def test_the_live_context_has_every_member_of_the_context_protocol():
    from alphaloop.live import LiveContext
    from alphaloop.strategy.base import Context

    members = {name for name in vars(Context) if not name.startswith("_")}
    assert members and not {name for name in members if not hasattr(LiveContext, name)}
