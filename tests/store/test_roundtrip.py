"""A saved run comes back equal: metrics, trades, equity values and UTC times, to the microsecond."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alphaloop.core.errors import StoreError
from alphaloop.core.results import TRADE_COLUMNS
from alphaloop.store import Store


def assert_trades_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(TRADE_COLUMNS)
    assert len(got) == len(want)
    for col in ("size", "entry_price", "exit_price", "pnl", "return_pct", "commission"):
        np.testing.assert_array_equal(got[col].to_numpy(float), want[col].to_numpy(float), err_msg=col)
    for col in ("entry_time", "exit_time"):
        g, w = pd.DatetimeIndex(got[col]), pd.DatetimeIndex(want[col])
        assert str(g.tz) == "UTC"
        assert g.equals(w), col  # exact to the microsecond, NaT where open
    assert got["entry_bar"].tolist() == want["entry_bar"].tolist()
    np.testing.assert_array_equal(got["exit_bar"].to_numpy(float), want["exit_bar"].to_numpy(float))
    for col in ("instrument", "tag", "exit_reason"):
        norm = [None if pd.isna(v) else v for v in got[col]]
        assert norm == [None if pd.isna(v) else v for v in want[col]], col


def test_round_trip_is_exact(store: Store, make_result) -> None:
    result = make_result(n_trades=5, n_open=2,
                         extra_metrics={"profit_factor": math.inf, "sortino": math.nan, "worst": -math.inf})
    run_id = store.save_backtest(result)
    assert result.run_id == run_id and run_id.startswith("run_")

    got = store.get_run(run_id)
    assert got.run_id == run_id
    assert got.spec == result.spec and got.spec.key == result.spec.key
    assert got.instruments == result.instruments
    assert got.start == result.start and got.end == result.end and str(got.start.tz) == "UTC"
    assert (got.n_bars, got.initial_cash, got.n_orders, got.n_fills) == (48, 10_000.0, 12, 12)
    assert (got.fingerprint, got.data_source, got.settings) == (result.fingerprint, result.data_source,
                                                                result.settings)
    # Metrics: same keys in the same order, floats bit-equal, NaN and ±inf preserved.
    assert list(got.metrics) == list(result.metrics)
    for k, v in result.metrics.items():
        assert (math.isnan(v) and math.isnan(got.metrics[k])) or got.metrics[k] == v, k
    assert got.final_equity == result.final_equity

    assert_trades_equal(got.trades, result.trades)
    assert_trades_equal(got.open_trades, result.open_trades)
    assert got.trades.index.tolist() == list(range(5)) and got.open_trades.index.tolist() == [0, 1]

    pd.testing.assert_frame_equal(got.equity, result.equity, check_freq=False, check_names=False)


def test_equity_keeps_nanosecond_times_and_resolution(store: Store, make_result) -> None:
    result = make_result(n_bars=4, n_trades=1)
    idx = result.equity.index.as_unit("ns") + pd.to_timedelta([1, 2, 3, 999], unit="ns")
    result.equity = result.equity.set_axis(idx)
    got = store.get_run(store.save_backtest(result)).equity
    assert got.index.dtype == idx.dtype  # datetime64[ns, UTC]
    assert got.index.asi8.tolist() == idx.asi8.tolist()


def test_naive_and_non_utc_times_are_stored_as_utc(store: Store, make_result) -> None:
    result = make_result(n_trades=1)
    result.start = pd.Timestamp("2024-03-01 01:00", tz="Europe/Paris")  # == 00:00 UTC
    result.equity = result.equity.tz_convert("America/New_York")
    got = store.get_run(store.save_backtest(result))
    assert got.start == pd.Timestamp("2024-03-01 00:00", tz="UTC") and str(got.start.tz) == "UTC"
    assert str(got.equity.index.tz) == "UTC"
    assert got.equity.index.equals(result.equity.index.tz_convert("UTC"))


def test_run_without_trades(store: Store, make_result) -> None:
    result = make_result(n_trades=0, sharpe=None)
    got = store.get_run(store.save_backtest(result))
    assert len(got.trades) == 0 and len(got.open_trades) == 0
    assert list(got.trades.columns) == list(TRADE_COLUMNS)
    assert store.list_runs(1)[0].n_trades == 0


def test_given_run_id_is_kept(store: Store, make_result) -> None:
    result = make_result(run_id="run_custom_1")
    assert store.save_backtest(result) == "run_custom_1"
    assert store.get_run("run_custom_1").run_id == "run_custom_1"


def test_query_columns_come_from_metrics(store: Store, make_result) -> None:
    store.save_backtest(make_result(sharpe=math.nan, return_pct=None))
    run = store.list_runs(1)[0]
    assert run.sharpe is None  # NaN is "no value" for ranking, on both backends
    assert math.isnan(run.metrics["sharpe"])  # while the metrics keep it as given
    assert run.return_pct == pytest.approx((run.final_equity / 10_000.0 - 1) * 100)  # derived when absent
    assert (run.max_drawdown_pct, run.n_trades) == (-0.4, 3)
    assert run.ml_feedback_submitted is False and run.feedback_submitted_at is None


def test_strategy_row_is_shared_by_spec(store: Store, make_result) -> None:
    a = store.save_backtest(make_result("sma_cross", {"fast": 10, "slow": 30}))
    b = store.save_backtest(make_result("sma_cross", {"slow": 30, "fast": 10}))  # same spec, other order
    c = store.save_backtest(make_result("sma_cross", {"fast": 5, "slow": 30}))
    runs = {r.run_id: r for r in store.list_runs(10)}
    assert runs[a].strategy_id == runs[b].strategy_id != runs[c].strategy_id
    strategies = store.list_strategies()
    assert len(strategies) == 2
    s = store.get_strategy(runs[a].strategy_id)
    assert (s.name, s.params, s.status, s.spec_key) == ("sma_cross", {"fast": 10, "slow": 30}, "candidate",
                                                        make_result().spec.key)


def test_unknown_run_id(store: Store) -> None:
    with pytest.raises(StoreError, match="run_nope"):
        store.get_run("run_nope")


def test_bad_result_is_refused_before_writing(store: Store, make_result, count_rows) -> None:
    result = make_result()
    result.trades = result.trades.drop(columns=["pnl"])
    with pytest.raises(StoreError, match=r"trades lacks column.*pnl"):
        store.save_backtest(result)
    assert result.run_id is None
    assert count_rows(store, "backtest_runs") == 0 and count_rows(store, "strategies") == 0
