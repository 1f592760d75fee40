"""The compiled sma_cross sweep equals the event-driven backtester, combination by combination.

Every row is compared with ``run_backtest`` for the same parameters, exactly: same trade count,
the same doubles for final equity, return, drawdown, Sharpe and exposure, and the same trades.
"""

from __future__ import annotations

import math
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaloop.backtest import run_backtest
from alphaloop.backtest.sweep import SWEEP_COLUMNS, sma_cross_trades, sweep_sma_cross
from alphaloop.core.errors import ConfigError, DataError, StrategyError
from alphaloop.data import load_bars
from alphaloop.execution import BrokerConfig, Commission
from alphaloop.strategy import load_strategy

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "market"
METRICS = ("final_equity", "return_pct", "max_drawdown_pct", "sharpe", "exposure_pct")


def backtest(df, fast, slow, cash=10_000.0, commission=0.0, spread=0.0, lot_size=1.0, fill_on="next_open"):
    if not isinstance(commission, Commission):
        commission = Commission(rate=commission)
    config = BrokerConfig(initial_cash=cash, commission=commission, spread=spread, lot_size=lot_size,
                          fill_on=fill_on)
    return run_backtest(load_strategy("sma_cross", {"fast": fast, "slow": slow}), df, config)


def same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def assert_matches_backtester(df, table, **kw) -> None:
    """Each row of ``table`` is what run_backtest reports for its parameters, to the last bit."""
    assert list(table.columns) == list(SWEEP_COLUMNS)
    for row in table.itertuples(index=False):
        res = backtest(df, int(row.fast), int(row.slow), **kw)
        expected = {"final_equity": res.final_equity, **{k: res.metrics[k] for k in METRICS[1:]}}
        assert row.n_trades == len(res.trades), (row.fast, row.slow)
        for name, value in expected.items():
            assert same_float(getattr(row, name), value), (row.fast, row.slow, name, getattr(row, name), value)


# ----------------------------------------------------------------------------- real data

@pytest.mark.parametrize("name", ["GOOG_daily.csv", "BTC-USD_daily.csv", "EURUSD_1h.csv"])
@pytest.mark.parametrize("kw", [
    {"commission": 0.002},
    {"commission": Commission(rate=0.001, fixed=1.0), "spread": 0.0005, "fill_on": "close", "cash": 100_000.0},
    {"lot_size": 0.01, "cash": 1_000.0},
], ids=["rate", "fixed+spread+close", "lots"])
def test_grid_on_market_fixtures_equals_backtester(name, kw):
    df = load_bars(FIXTURES / name)
    table = sweep_sma_cross(df, [2, 5, 10, 20, 50], [3, 10, 30, 100], **kw)
    assert len(table) == 12
    assert table["n_trades"].sum() > 500  # the comparison is not vacuous
    assert_matches_backtester(df, table, **kw)


def test_trades_of_a_combination_equal_the_backtesters():
    df = load_bars(FIXTURES / "GOOG_daily.csv")
    table, trades = sweep_sma_cross(df, [5, 10], [20, 30], commission=0.002, spread=0.001, trades_of=(10, 20))
    res = backtest(df, 10, 20, commission=0.002, spread=0.001)
    assert len(trades) > 50
    pd.testing.assert_frame_equal(trades, res.trades)
    assert table.loc[(table.fast == 10) & (table.slow == 20), "n_trades"].item() == len(trades)
    pd.testing.assert_frame_equal(sma_cross_trades(df, 10, 20, commission=0.002, spread=0.001), res.trades)


def test_rows_are_sorted_distinct_pairs_with_fast_below_slow():
    df = load_bars(FIXTURES / "GOOG_daily.csv")
    table = sweep_sma_cross(df, np.array([20, 5, 5, 10]), range(30, 4, -10))
    pairs = list(zip(table["fast"], table["slow"]))
    assert pairs == [(5, 10), (5, 20), (5, 30), (10, 20), (10, 30), (20, 30)]
    assert table["n_trades"].dtype == np.int64 and table["fast"].dtype == np.int64


def test_results_do_not_depend_on_the_number_of_threads():
    df = load_bars(FIXTURES / "EURUSD_1h.csv")
    threads = numba.get_num_threads()
    many = sweep_sma_cross(df, range(2, 30, 3), range(10, 200, 20), commission=0.001)
    numba.set_num_threads(1)
    try:
        one = sweep_sma_cross(df, range(2, 30, 3), range(10, 200, 20), commission=0.001)
    finally:
        numba.set_num_threads(threads)
    pd.testing.assert_frame_equal(one, many, check_exact=True)


# ----------------------------------------------------------------------------- edge rules

def bars(close, open_=None, freq="D") -> pd.DataFrame:
    close = np.asarray(close, dtype=float)
    open_ = np.r_[close[0], close[:-1]] if open_ is None else np.asarray(open_, dtype=float)
    index = pd.date_range("2024-01-01", periods=len(close), freq=freq, tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
                         "close": close, "volume": 1.0}, index=index)


@pytest.mark.parametrize("fill_on", ["next_open", "close"])
def test_ruin_liquidates_at_the_close_and_stops(fill_on):
    # up, then down (fast under slow: short), then the price triples while short
    df = bars(np.r_[np.linspace(100, 120, 10), np.linspace(118, 90, 8), [300.0] * 6])
    res = backtest(df, 2, 4, fill_on=fill_on)
    assert res.trades["exit_reason"].tolist() == ["out_of_money"] and res.final_equity == 0.0
    table, trades = sweep_sma_cross(df, [2], [4], fill_on=fill_on, trades_of=(2, 4))
    assert_matches_backtester(df, table, fill_on=fill_on)
    assert table["max_drawdown_pct"].item() == -100.0
    pd.testing.assert_frame_equal(trades, res.trades)


@pytest.mark.parametrize("fill_on", ["next_open", "close"])
def test_end_of_data_closes_the_position_and_drops_the_last_bars_orders(fill_on):
    # a cross on the very last bar (its orders are cancelled with next_open, filled then closed
    # at the same close with fill_on="close") and a position open until the end
    df = bars([10, 9, 8, 7, 8, 9, 10, 11, 12, 11, 10, 9, 8, 7, 6, 5, 6, 7])
    res = backtest(df, 2, 3, commission=0.01, fill_on=fill_on)
    assert "end_of_data" in res.trades["exit_reason"].tolist()
    table, trades = sweep_sma_cross(df, [2], [3], commission=0.01, fill_on=fill_on, trades_of=(2, 3))
    assert_matches_backtester(df, table, commission=0.01, fill_on=fill_on)
    pd.testing.assert_frame_equal(trades, res.trades)


def test_orders_too_small_for_one_lot_are_rejected_as_the_broker_rejects_them():
    df = load_bars(FIXTURES / "GOOG_daily.csv")  # GOOG trades above 100: 50 of cash buys nothing
    table = sweep_sma_cross(df, [5, 10], [20, 40], cash=50.0, commission=0.002)
    assert (table["n_trades"] == 0).all() and (table["final_equity"] == 50.0).all()
    assert_matches_backtester(df, table, cash=50.0, commission=0.002)


# ----------------------------------------------------------------------------- any data

@st.composite
def random_bars(draw):
    n = draw(st.integers(min_value=20, max_value=250))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    vol = draw(st.sampled_from([0.005, 0.03, 0.15, 0.4]))  # 0.4: ruin, and ties at the 0.01 floor
    freq = draw(st.sampled_from(["D", "h", "B", "37min"]))
    rng = np.random.default_rng(seed)
    close = np.round(50 * np.exp(np.cumsum(rng.normal(0, vol, n))), 2).clip(0.01)
    open_ = np.round(np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, vol / 3, n)), 2).clip(0.01)
    start = pd.Timestamp("2021-01-01", tz="UTC") + pd.Timedelta(hours=draw(st.integers(0, 24 * 7)))
    index = pd.date_range(start, periods=n, freq=freq, name="time")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
                         "close": close, "volume": 1.0}, index=index)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=random_bars(), data=st.data(),
       commission=st.sampled_from([0.0, 0.002, 0.05, -0.001, Commission(rate=0.001, per_unit=0.01),
                                   Commission(fixed=5.0), Commission(rate=0.01, fixed=40.0)]),
       spread=st.sampled_from([0.0, 0.001, 0.05]),
       lot_size=st.sampled_from([1.0, 0.01, 10.0]),
       cash=st.sampled_from([100.0, 10_000.0, 1_000_000.0]),
       fill_on=st.sampled_from(["next_open", "close"]))
def test_sweep_equals_backtester_on_any_data(df, data, commission, spread, lot_size, cash, fill_on):
    n = len(df)
    fast = data.draw(st.lists(st.integers(1, min(n, 30)), min_size=1, max_size=3), label="fast")
    slow = data.draw(st.lists(st.integers(2, min(n, 80)), min_size=1, max_size=3).filter(
        lambda s: max(s) > min(fast)), label="slow")
    kw = {"commission": commission, "spread": spread, "lot_size": lot_size, "cash": cash, "fill_on": fill_on}
    table = sweep_sma_cross(df, fast, slow, **kw)
    assert len(table) == len({(f, s) for f in fast for s in slow if f < s})
    assert_matches_backtester(df, table, **kw)


# ----------------------------------------------------------------------------- bad input

@pytest.fixture(scope="module")
def goog():
    return load_bars(FIXTURES / "GOOG_daily.csv")


@pytest.mark.parametrize("fast,slow,match", [
    ([], [20], "fast_values is empty"),
    ([10], [], "slow_values is empty"),
    ([20, 30], [10, 20], "no valid combination.*fast < slow"),
    ([0, 5], [20], "fast_values: windows must be >= 1, got 0"),
    ([5], [-20], "slow_values: windows must be >= 1, got -20"),
    ([5], [10_000], r"slow_values: window 10000 is longer than the data \(2148 bars\)"),
    ([5.5], [20], "fast_values: windows must be integers, got 5.5"),
    ([True], [20], "fast_values: windows must be integers"),
    (5, [20], "fast_values must be a sequence"),
    ([5], "20", "slow_values must be a sequence"),
])
def test_bad_grids_are_refused_naming_the_parameter(goog, fast, slow, match):
    with pytest.raises(StrategyError, match=match):
        sweep_sma_cross(goog, fast, slow)


def test_bad_trades_of_is_refused(goog):
    with pytest.raises(StrategyError, match="fast < slow"):
        sweep_sma_cross(goog, [5], [20], trades_of=(20, 5))


@pytest.mark.parametrize("kw,match", [
    ({"cash": 0.0}, "initial cash"), ({"spread": 0.5}, "spread"), ({"lot_size": 0.0}, "lot size"),
    ({"fill_on": "open"}, "fill_on"), ({"commission": 0.5}, "commission rate"),
])
def test_bad_broker_settings_are_refused(goog, kw, match):
    with pytest.raises(ConfigError, match=match):
        sweep_sma_cross(goog, [5], [20], **kw)


def test_bad_bars_are_refused(goog):
    with pytest.raises(DataError, match="missing column"):
        sweep_sma_cross(goog.drop(columns="open"), [5], [20])
    with pytest.raises(DataError, match="no bars"):
        sweep_sma_cross(goog.iloc[:0], [5], [20])
    with pytest.raises(DataError, match="DatetimeIndex"):
        sweep_sma_cross(goog.reset_index(drop=True), [5], [20])
    broken = goog.copy()
    broken.iloc[7, broken.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError, match=r"close.*at bar 7"):
        sweep_sma_cross(broken, [5], [20])
    with pytest.raises(DataError, match="DataFrame"):
        sweep_sma_cross({"GOOG": goog}, [5], [20])
