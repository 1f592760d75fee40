"""Executors for candidate backtests: serial, a real process pool and a real Dask LocalCluster.

The reference is the backtester itself (``run_backtest`` called directly); every executor must give
byte-identical results to it and to each other, in the order of the tasks.
"""

from __future__ import annotations

import dataclasses
import pickle
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaloop.backtest import run_backtest
from alphaloop.core.errors import ConfigError
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.data import load_bars
from alphaloop.discovery.errors import DiscoveryError, DiscoveryInputError
from alphaloop.discovery.executors import (
    BacktestTask,
    BrokerSettings,
    DaskExecutor,
    Executor,
    LocalProcessExecutor,
    SerialExecutor,
    TaskResult,
    make_executor,
    run_task,
)
from alphaloop.execution import BrokerConfig, Commission, FixedSlippage, VolumeShareSlippage
from alphaloop.strategy import load_strategy

distributed = pytest.importorskip("distributed")

GOOG = Path(__file__).resolve().parents[1] / "fixtures" / "market" / "GOOG_daily.csv"
SPECS = [StrategySpec("sma_cross", {"fast": f, "slow": s}) for f in (5, 10, 20) for s in (30, 60)]
WINDOWS = [None, (0, 1100), (1000, 2148)]
BOOM = textwrap.dedent("""
    from alphaloop.strategy import Strategy

    class Boom(Strategy):
        params = {"at": 100}

        def on_bar(self, ctx):
            if ctx.i == self.at:
                raise ValueError(f"boom at bar {ctx.i}")
""")


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_bars(GOOG)


@pytest.fixture(scope="module")
def tasks() -> list[BacktestTask]:
    """The grid on the in-memory frame, plus a few on the file (loaded by each worker)."""
    grid = [BacktestTask(s, window=w) for s in SPECS for w in WINDOWS]
    files = [BacktestTask(s, data=str(GOOG), window=(500, 1500)) for s in SPECS[:3]]
    return grid + files


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as c:
        yield c


@pytest.fixture(scope="module")
def dask_ex(cluster):
    with DaskExecutor(cluster) as ex:
        yield ex


@pytest.fixture(scope="module")
def local_ex():
    with LocalProcessExecutor(max_workers=2) as ex:
        yield ex


@pytest.fixture(scope="module")
def serial_results(tasks, goog) -> list[TaskResult]:
    return SerialExecutor().map(tasks, data=goog)


def _exact(r: TaskResult) -> tuple:
    """Every field as bytes/strings: equal only if bit-for-bit the same."""
    return (r.spec.to_dict(), r.data, r.window, r.fingerprint, r.n_trades, r.error,
            pickle.dumps(r.metrics), r.returns.dtype.str, r.returns.tobytes())


# ---- the task itself ---------------------------------------------------------------------------

def test_run_task_reports_what_run_backtest_reports(goog):
    spec = StrategySpec("sma_cross", {"fast": 10, "slow": 30})
    ref = run_backtest(load_strategy(spec.name, spec.params), goog.iloc[200:1800], spec=spec)
    r = run_task(BacktestTask(spec, window=(200, 1800)), goog)
    assert r.ok and r.error is None
    assert r.fingerprint == ref.fingerprint
    assert r.n_trades == len(ref.trades) > 0
    assert r.metrics == {k: float(v) for k, v in ref.metrics.items()}
    assert all(type(v) is float for v in r.metrics.values())
    expected = ref.equity["equity"].pct_change().to_numpy()[1:]
    assert r.returns.dtype == np.float64 and len(r.returns) == 1600 - 1
    np.testing.assert_allclose(r.returns, expected, rtol=1e-12, atol=1e-15)


def test_file_reference_gives_the_frame_result(goog):
    spec = StrategySpec("sma_cross", {"fast": 5, "slow": 60})
    from_file = run_task(BacktestTask(spec, data=GOOG, window=(100, 900)))  # PathLike becomes str
    in_memory = run_task(BacktestTask(spec, window=(100, 900)), goog)
    assert from_file.data == str(GOOG) and in_memory.data is None
    assert _exact(from_file)[3:] == _exact(in_memory)[3:]


def test_broker_settings_reach_the_broker(goog):
    spec = StrategySpec("sma_cross", {"fast": 10, "slow": 30})
    config = BrokerConfig(initial_cash=50_000, commission=Commission(rate=0.002, fixed=1.0),
                          slippage=FixedSlippage(5.0))
    settings = BrokerSettings.from_config(config)
    assert settings.to_config() == config
    vs = BrokerConfig(slippage=VolumeShareSlippage(max_share=0.5, impact=0.2))
    assert BrokerSettings.from_config(vs).to_config() == vs
    ref = run_backtest(load_strategy(spec.name, spec.params), goog, config, spec=spec)
    r = run_task(BacktestTask(spec, broker=settings), goog)
    assert r.fingerprint == ref.fingerprint and r.metrics["commissions"] > 0
    with pytest.raises(ConfigError):
        BrokerSettings(fill_on="tomorrow")
    with pytest.raises(ConfigError, match="not both"):
        BrokerSettings(slippage_bps=1.0, volume_share=0.1)


def test_task_is_small_and_validated(goog):
    task = BacktestTask(SPECS[0], window=(np.int64(3), 40))
    assert task.window == (3, 40) and type(task.window[0]) is int
    assert len(pickle.dumps(task)) < 1000  # a reference to the data, never the data
    for bad in [(5, 5), (-1, 4), (1, 2, 3), (0.0, 10)]:
        with pytest.raises(DiscoveryInputError, match="window"):
            BacktestTask(SPECS[0], window=bad)
    with pytest.raises(DiscoveryInputError, match=r"Executor\.map"):
        BacktestTask(SPECS[0], data=goog)
    with pytest.raises(DiscoveryInputError, match="no DataFrame"):
        SerialExecutor().map([BacktestTask(SPECS[0])])


def test_bad_tasks_are_reported_not_dropped(goog, tmp_path):
    (tmp_path / "boom.py").write_text(BOOM)
    tasks = [
        BacktestTask(SPECS[0]),
        BacktestTask(StrategySpec(f"{tmp_path / 'boom.py'}:Boom", {"at": 100})),
        BacktestTask(StrategySpec("sma_cross", {"fast": 30, "slow": 10})),
        BacktestTask(SPECS[0], data=str(tmp_path / "missing.csv")),
        BacktestTask(SPECS[0], window=(2000, 3000)),
        BacktestTask(SPECS[1]),
    ]
    out = SerialExecutor().map(tasks, data=goog)
    assert [r.spec for r in out] == [t.spec for t in tasks]
    assert [r.ok for r in out] == [True, False, False, False, False, True]
    assert out[1].error.startswith("StrategyError: ") and "ValueError: boom at bar 100" in out[1].error
    assert out[2].error.startswith("StrategyError: ") and "0 < fast < slow" in out[2].error
    assert out[3].error.startswith("DataError: ") and "missing.csv" in out[3].error
    assert out[4].error.startswith("DiscoveryInputError: ") and "2148 bars" in out[4].error
    for r in out[1:5]:
        assert r.metrics == {} and r.fingerprint == "" and r.n_trades == 0 and r.returns.size == 0


# ---- every executor gives the same results -----------------------------------------------------

@pytest.mark.parametrize("kind", ["local", "dask"])
def test_executors_match_serial_bit_for_bit(kind, request, tasks, goog, serial_results):
    ex = request.getfixturevalue(f"{kind}_ex")
    assert isinstance(ex, Executor)
    assert all(r.ok for r in serial_results)
    out = ex.map(tasks, data=goog)
    assert [_exact(r) for r in out] == [_exact(r) for r in serial_results]
    assert out == serial_results


@pytest.mark.parametrize("kind", ["local", "dask"])
def test_order_is_the_order_of_tasks(kind, request, goog, tmp_path):
    """Long backtests first, short ones last: the short ones finish first, results still line up."""
    ex = request.getfixturevalue(f"{kind}_ex")
    (tmp_path / "boom.py").write_text(BOOM)
    long = [BacktestTask(s) for s in SPECS]
    short = [BacktestTask(s, window=(k * 10, k * 10 + 80)) for k, s in enumerate(SPECS * 2)]
    tasks = [*long, BacktestTask(StrategySpec(f"{tmp_path / 'boom.py'}:Boom", {"at": 5})), *short]
    out = ex.map(tasks, data=goog)
    assert [(r.spec, r.window) for r in out] == [(t.spec, t.window) for t in tasks]
    assert out == SerialExecutor().map(tasks, data=goog)
    assert not out[len(long)].ok and "boom at bar 5" in out[len(long)].error
    assert sum(r.ok for r in out) == len(tasks) - 1
    assert ex.map([], data=goog) == []


# ---- the data is shipped once per worker, not once per task ------------------------------------

def test_process_pool_ships_the_frame_once_per_worker(goog, monkeypatch):
    calls = []
    getstate = pd.DataFrame.__getstate__

    def counting(self):
        calls.append(len(self))
        return getstate(self)

    monkeypatch.setattr(pd.DataFrame, "__getstate__", counting)
    frame = goog.copy()
    tasks = [BacktestTask(s, window=w) for s in SPECS for w in WINDOWS]
    with LocalProcessExecutor(max_workers=2) as ex:
        first = ex.map(tasks, data=frame)
        # pickled for the initializer of each worker process (at most 2), never per task (18)
        assert 1 <= len(calls) <= 2 and set(calls) == {len(goog)}
        second = ex.map(tasks, data=frame)
        assert 1 <= len(calls) <= 2  # same data: same pool, nothing shipped again
        named = [BacktestTask(s, data="short") for s in SPECS]
        short = goog.iloc[:1500].copy()
        ex.map(named, data={"short": short})  # new data: a new pool
        n = len(calls)
        assert set(calls) == {len(goog), 1500} and n <= 4
        ex.map(named, data={"short": short})  # a new dict of the same frame: the same pool
        assert len(calls) == n
    assert first == second == SerialExecutor().map(tasks, data=frame)


def test_dask_scatters_the_frame_once_to_every_worker(dask_ex, goog, monkeypatch):
    scatters = []
    scatter = dask_ex.client.scatter

    def spy(data, **kw):
        scatters.append(kw)
        return scatter(data, **kw)

    monkeypatch.setattr(dask_ex.client, "scatter", spy)
    frame = goog.copy()
    tasks = [BacktestTask(s, window=w) for s in SPECS for w in WINDOWS]
    first = dask_ex.map(tasks, data=frame)
    second = dask_ex.map(tasks, data=frame)
    assert len(scatters) == 1 and scatters[0]["broadcast"] is True
    key = dask_ex._scattered.key
    has_what = dask_ex.client.has_what()
    assert len(has_what) == 2 and all(key in keys for keys in has_what.values())
    assert first == second
    named, expected = [BacktestTask(SPECS[0], data="GOOG")], [dataclasses.replace(first[0], data="GOOG")]
    assert dask_ex.map(named, data={"GOOG": frame}) == expected  # other data: scattered anew
    assert dask_ex.map(named, data={"GOOG": frame}) == expected  # a new dict of the same frame: not again
    assert len(scatters) == 2


# ---- Dask: connecting, owning, closing ---------------------------------------------------------

def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(DiscoveryError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:1") as e:
        make_executor("dask", address="tcp://127.0.0.1:1", connect_timeout="1s")
    assert e.value.exit_code == 10


def test_dask_leaves_a_given_cluster_running(cluster, goog):
    task = BacktestTask(SPECS[0], window=(0, 300))
    with DaskExecutor(cluster.scheduler_address) as ex:
        [r] = ex.map([task], data=goog)
    assert ex.client.status == "closed"
    assert cluster.status.name == "running" and len(cluster.scheduler_info["workers"]) == 2
    assert r == run_task(task, goog)


def test_dask_closes_the_cluster_it_started(goog):
    task = BacktestTask(SPECS[1], data=str(GOOG), window=(0, 400))
    ex = make_executor("dask", n_workers=1)
    cluster = ex._cluster
    with ex:
        assert isinstance(cluster, distributed.LocalCluster) and len(cluster.scheduler_info["workers"]) == 1
        assert ex.map([task]) == [run_task(task)]
    assert ex._cluster is None and cluster.status.name == "closed"


def test_make_executor_kinds():
    with make_executor("serial") as s, make_executor("local", max_workers=1) as p:
        assert isinstance(s, SerialExecutor) and isinstance(p, LocalProcessExecutor) and p.max_workers == 1
        assert isinstance(s, Executor) and isinstance(p, Executor)
    with pytest.raises(ConfigError, match="unknown executor 'ray'"):
        make_executor("ray")
    with pytest.raises(DiscoveryInputError):
        LocalProcessExecutor(max_workers=0)
