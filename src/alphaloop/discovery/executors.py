"""Executors that run many candidate backtests: in-process, a local process pool, or Dask.

A :class:`BacktestTask` is small and picklable: it names its data instead of carrying it. The data
is either a bars file (loaded on the worker, once per worker and file) or an in-memory frame given
to ``Executor.map(tasks, data=...)``, which the executor ships once per worker (a process-pool
initializer, or ``client.scatter(..., broadcast=True)`` on Dask), never once per task.

Every executor runs the same :func:`run_task`, so the same tasks give byte-identical
:class:`TaskResult`s (fingerprints, metrics, returns) whichever executor runs them; results always
come back in the order of the tasks. A task that fails is reported in ``TaskResult.error``, never
dropped.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from alphaloop.backtest import run_backtest
from alphaloop.core.errors import ConfigError
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.data import load_bars
from alphaloop.discovery.errors import DiscoveryError, DiscoveryInputError
from alphaloop.execution import BrokerConfig, Commission, FixedSlippage, NoSlippage, VolumeShareSlippage
from alphaloop.strategy import load_strategy

__all__ = [
    "BacktestTask",
    "BrokerSettings",
    "DaskExecutor",
    "Executor",
    "LocalProcessExecutor",
    "SerialExecutor",
    "TaskResult",
    "make_executor",
    "run_task",
]

# In-memory data given to map(): a single frame (tasks with ``data=None``) or frames by name.
Datasets = pd.DataFrame | Mapping[str, pd.DataFrame]
_Shared = dict[str | None, pd.DataFrame]


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """A ``BrokerConfig`` as plain values, so a task pickles (and prints) small.

    ``slippage_bps`` > 0 selects fixed slippage, ``volume_share`` set selects volume-share slippage
    (with ``impact``); neither means none.
    """

    initial_cash: float = 10_000.0
    commission_rate: float = 0.0
    commission_per_unit: float = 0.0
    commission_fixed: float = 0.0
    spread: float = 0.0
    slippage_bps: float = 0.0
    volume_share: float | None = None
    impact: float = 0.1
    fill_on: str = "next_open"
    lot_size: float = 1.0

    def __post_init__(self) -> None:
        self.to_config()  # validate where the task is made, not on a worker later

    def to_config(self) -> BrokerConfig:
        if self.slippage_bps and self.volume_share is not None:
            raise ConfigError("give slippage_bps or volume_share, not both")
        if self.volume_share is not None:
            slippage: Any = VolumeShareSlippage(max_share=self.volume_share, impact=self.impact)
        elif self.slippage_bps:
            slippage = FixedSlippage(self.slippage_bps)
        else:
            slippage = NoSlippage()
        return BrokerConfig(
            initial_cash=self.initial_cash,
            commission=Commission(rate=self.commission_rate, per_unit=self.commission_per_unit,
                                  fixed=self.commission_fixed),
            spread=self.spread, slippage=slippage, fill_on=self.fill_on, lot_size=self.lot_size)

    @classmethod
    def from_config(cls, config: BrokerConfig) -> BrokerSettings:
        c, s = config.commission, config.slippage
        kw: dict[str, Any] = {}
        if isinstance(s, FixedSlippage):
            kw["slippage_bps"] = s.bps
        elif isinstance(s, VolumeShareSlippage):
            kw["volume_share"], kw["impact"] = s.max_share, s.impact
        elif not isinstance(s, NoSlippage):
            raise ConfigError(f"slippage model {s!r} has no plain-value form")
        return cls(initial_cash=config.initial_cash, commission_rate=c.rate, commission_per_unit=c.per_unit,
                   commission_fixed=c.fixed, spread=config.spread, fill_on=config.fill_on,
                   lot_size=config.lot_size, **kw)


@dataclass(frozen=True, slots=True)
class BacktestTask:
    """One backtest to run: a strategy spec over (a window of) some data with a broker setup.

    ``data`` refers to the bars: ``None`` is the single frame given to ``map(tasks, data=frame)``;
    a string is the name of a frame given as ``map(tasks, data={name: frame})`` or else the path of
    a bars file (CSV/Parquet) that each worker loads with ``load_bars``. ``window`` is
    ``(start, end)`` bar indices, end exclusive (a walk-forward slice; the strategy starts fresh on
    it, indicator warm-up included); ``None`` is all bars.
    """

    spec: StrategySpec
    data: str | None = None
    window: tuple[int, int] | None = None
    broker: BrokerSettings = field(default_factory=BrokerSettings)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, StrategySpec):
            raise DiscoveryInputError(f"spec must be a StrategySpec, got {type(self.spec).__name__}")
        if self.data is not None and not isinstance(self.data, str | os.PathLike):
            raise DiscoveryInputError(f"data must be a dataset name, a file path or None, got "
                                      f"{type(self.data).__name__} (pass frames to Executor.map(data=...))")
        if isinstance(self.data, os.PathLike):
            object.__setattr__(self, "data", os.fspath(self.data))
        if self.window is not None:
            w = tuple(self.window)
            if len(w) != 2 or not all(isinstance(v, int | np.integer) for v in w) or not 0 <= w[0] < w[1]:
                raise DiscoveryInputError(f"window must be (start, end) bar indices with 0 <= start < end, "
                                          f"got {self.window!r}")
            object.__setattr__(self, "window", (int(w[0]), int(w[1])))


@dataclass(frozen=True, slots=True, eq=False)
class TaskResult:
    """What one task produced. On failure ``error`` names the error type and message, ``metrics`` is
    empty and ``returns`` has no values.

    ``returns`` are the per-bar simple returns of the equity curve (``n_bars - 1`` values, float64;
    0 once equity is gone), for significance tests. Equality is byte equality of every field.
    """

    spec: StrategySpec
    data: str | None
    window: tuple[int, int] | None
    metrics: dict[str, float]
    fingerprint: str
    n_trades: int
    returns: np.ndarray
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def _canonical(self) -> tuple:
        # float.hex keeps every bit and makes NaN equal to NaN
        metrics = tuple((k, float(v).hex()) for k, v in self.metrics.items())
        return (self.spec.to_dict(), self.data, self.window, metrics, self.fingerprint, self.n_trades,
                self.returns.dtype.str, self.returns.tobytes(), self.error)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskResult):
            return NotImplemented
        return self._canonical() == other._canonical()

    __hash__ = None  # type: ignore[assignment]  # mutable metrics dict and array


# ---- the work ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    # keyed by mtime and size too, so a long-lived worker notices a rewritten file
    return load_bars(path)


def _load_file(path: str) -> pd.DataFrame:
    st = os.stat(path) if os.path.isfile(path) else None
    if st is None:
        return load_bars(path)  # raises DataError naming the file
    return _load_cached(path, st.st_mtime_ns, st.st_size)


def _equity_returns(equity: np.ndarray) -> np.ndarray:
    prev, cur = equity[:-1], equity[1:]
    out = np.zeros(len(cur), dtype=np.float64)
    np.divide(cur - prev, prev, out=out, where=prev > 0)
    return out


def _failed(task: BacktestTask, e: BaseException) -> TaskResult:
    return TaskResult(task.spec, task.data, task.window, {}, "", 0, np.empty(0, dtype=np.float64),
                      f"{type(e).__name__}: {e}")


def run_task(task: BacktestTask, data: pd.DataFrame | None = None) -> TaskResult:
    """Run one task over ``data`` (the frame ``task.data`` names; ``None``: load ``task.data`` as a file).

    Any exception from loading, the strategy or the engine is recorded in ``error`` (type and
    message), so one bad candidate never sinks a sweep.
    """
    try:
        if data is None:
            if task.data is None:
                raise DiscoveryError("the task refers to in-memory data, but none was given")
            data = _load_file(task.data)
        if task.window is not None:
            start, end = task.window
            if end > len(data):
                raise DiscoveryInputError(f"window {task.window} runs past the data's {len(data)} bars")
            data = data.iloc[start:end]
        strategy = load_strategy(task.spec.name, task.spec.params)
        result = run_backtest(strategy, data, task.broker.to_config(), spec=task.spec)
    except Exception as e:
        return _failed(task, e)
    metrics = {k: float(v) for k, v in result.metrics.items()}
    returns = _equity_returns(result.equity["equity"].to_numpy(dtype=np.float64))
    return TaskResult(task.spec, task.data, task.window, metrics, result.fingerprint, len(result.trades), returns)


def _shared_of(data: Datasets | None) -> _Shared:
    if data is None:
        return {}
    if isinstance(data, pd.DataFrame):
        return {None: data}
    if not isinstance(data, Mapping) or not all(isinstance(v, pd.DataFrame) for v in data.values()):
        raise DiscoveryInputError("data must be a DataFrame or a mapping of name -> DataFrame")
    return dict(data)


def _check_tasks(tasks: Iterable[BacktestTask], shared: _Shared) -> list[BacktestTask]:
    tasks = list(tasks)
    for k, t in enumerate(tasks):
        if not isinstance(t, BacktestTask):
            raise DiscoveryInputError(f"task {k} is a {type(t).__name__}, not a BacktestTask")
        if t.data is None and None not in shared:
            raise DiscoveryInputError(f"task {k} ({t.spec.name}) refers to in-memory data (data=None), but map() "
                                      "was given no DataFrame")
    return tasks


def _same_frames(a: _Shared | None, b: _Shared) -> bool:
    # identity of the frames, not of the mapping: map(tasks, data={"X": df}) with a fresh dict
    # literal on every call must not ship df again
    return a is not None and a.keys() == b.keys() and all(a[k] is b[k] for k in a)


def _run_with(task: BacktestTask, shared: _Shared | None) -> TaskResult:
    return run_task(task, shared.get(task.data) if shared else None)


def _run_batch(tasks: list[BacktestTask], shared: _Shared | None) -> list[TaskResult]:
    return [_run_with(t, shared) for t in tasks]


def _chunks(tasks: list[BacktestTask], slots: int) -> list[list[BacktestTask]]:
    # a few chunks per worker slot: a backtest can take only milliseconds, so one scheduler round
    # trip per backtest would cost as much as the work; several chunks per slot keep the load even
    size = max(1, math.ceil(len(tasks) / (max(slots, 1) * 4)))
    return [tasks[i:i + size] for i in range(0, len(tasks), size)]


# ---- executors ---------------------------------------------------------------------------------

@runtime_checkable
class Executor(Protocol):
    """Runs tasks; ``map`` returns one result per task, in the order of ``tasks``."""

    def map(self, tasks: Sequence[BacktestTask], data: Datasets | None = None) -> list[TaskResult]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


class _Closing:
    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass


class SerialExecutor(_Closing):
    """Runs tasks one after another in this process (tests, tiny jobs, debugging)."""

    def map(self, tasks: Sequence[BacktestTask], data: Datasets | None = None) -> list[TaskResult]:
        shared = _shared_of(data)
        return [_run_with(t, shared) for t in _check_tasks(tasks, shared)]


# The process pool's per-worker state: the frames the initializer received (once per worker).
_WORKER_SHARED: _Shared = {}


def _init_worker(shared: _Shared) -> None:
    global _WORKER_SHARED
    _WORKER_SHARED = shared


def _run_in_worker(task: BacktestTask) -> TaskResult:
    return _run_with(task, _WORKER_SHARED)


def _pool_context() -> multiprocessing.context.BaseContext:
    # forkserver: workers fork from a clean server process with alphaloop already imported (fast
    # start, and no fork of a parent that has threads, e.g. a Dask client's event loop)
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__", __name__])  # no effect once the server runs
    return ctx


class LocalProcessExecutor(_Closing):
    """A ``concurrent.futures.ProcessPoolExecutor`` on this machine (the embedded default).

    The in-memory frames reach each worker process once, through the pool's initializer; the pool
    is kept for later ``map`` calls with the same frames (the same objects) and rebuilt when they
    change, so a frame must not be modified in place once given.
    """

    def __init__(self, max_workers: int | None = None, *,
                 mp_context: multiprocessing.context.BaseContext | None = None):
        if max_workers is not None and max_workers < 1:
            raise DiscoveryInputError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers or os.cpu_count() or 1
        self._ctx = mp_context
        self._pool: ProcessPoolExecutor | None = None
        self._shared: _Shared | None = None  # what the pool's workers were initialised with

    def _pool_for(self, shared: _Shared) -> ProcessPoolExecutor:
        if self._pool is not None and _same_frames(self._shared, shared):
            return self._pool
        self.close()
        self._pool = ProcessPoolExecutor(self.max_workers, mp_context=self._ctx or _pool_context(),
                                         initializer=_init_worker, initargs=(shared,))
        self._shared = shared
        return self._pool

    def map(self, tasks: Sequence[BacktestTask], data: Datasets | None = None) -> list[TaskResult]:
        shared = _shared_of(data)
        tasks = _check_tasks(tasks, shared)
        if not tasks:
            return []
        pool = self._pool_for(shared)
        chunk = len(_chunks(tasks, self.max_workers)[0])
        try:
            return list(pool.map(_run_in_worker, tasks, chunksize=chunk))  # in the order of tasks
        except BrokenProcessPool as e:
            self.close()
            raise DiscoveryError(f"a worker process died while running backtests: {e}") from e

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool, self._shared = None, None


class DaskExecutor(_Closing):
    """Runs tasks on a Dask ``distributed`` cluster: one machine or many.

    ``address`` is a scheduler address (``tcp://host:8786``) or a cluster object to attach to;
    ``None`` starts a ``LocalCluster`` of ``n_workers`` processes. The executor closes its own
    client and the cluster it started, never a cluster it was given. In-memory frames are
    scattered to every worker once (``broadcast=True``) and reused while ``map`` gets the same
    frame objects (not to be modified in place once given).
    """

    def __init__(self, address: Any = None, n_workers: int = 2, threads_per_worker: int = 1, *,
                 connect_timeout: str | float = "3s"):
        try:
            from distributed import Client, LocalCluster
        except ImportError as e:
            raise DiscoveryError("the Dask executor needs dask[distributed] (pip install "
                                 "'dask[distributed]')") from e
        self._cluster = None  # only a cluster we started; closed in close()
        if address is None:
            self._cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                         processes=True, dashboard_address=":0")  # any free port
            target: Any = self._cluster
        else:
            target = address
        where = address if isinstance(address, str) else getattr(target, "scheduler_address", repr(target))
        try:
            self.client = Client(target, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as e:
            self._close_cluster()
            raise DiscoveryError(f"cannot reach the Dask scheduler at {where} (waited {connect_timeout}): {e}") from e
        self._shared: _Shared | None = None
        self._scattered: Any = None  # the Future of the shared frames, held on every worker

    def _shared_future(self, shared: _Shared) -> Any:
        if not shared:
            return None
        if self._scattered is None or not _same_frames(self._shared, shared):
            self._release()
            # one object holding all frames, replicated to every worker once
            [self._scattered] = self.client.scatter([shared], broadcast=True, hash=False)
            self._shared = shared
        return self._scattered

    def map(self, tasks: Sequence[BacktestTask], data: Datasets | None = None) -> list[TaskResult]:
        shared = _shared_of(data)
        tasks = _check_tasks(tasks, shared)
        if not tasks:
            return []
        fut = self._shared_future(shared)
        batches = _chunks(tasks, sum(self.client.nthreads().values()))
        # pure=False: every batch is its own key (tasks need not be tokenizable, duplicates still run)
        futures = self.client.map(_run_batch, batches, shared=fut, pure=False)
        try:
            # gather keeps the order of futures, batches keep the order of tasks
            return [r for batch in self.client.gather(futures) for r in batch]
        except Exception as e:  # a worker died, or the cluster went away: nothing partial comes back
            self.client.cancel(futures)
            raise DiscoveryError(f"Dask could not run the backtests: {type(e).__name__}: {e}") from e

    def _release(self) -> None:
        if self._scattered is not None:
            self._scattered.release()
        self._scattered, self._shared = None, None

    def _close_cluster(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None and client.status not in ("closed", "closing"):
            self._release()
            client.close()
        self._close_cluster()


def make_executor(kind: Literal["serial", "local", "dask"] = "local", **kw: Any) -> Executor:
    """``serial``, ``local`` (process pool; ``max_workers``) or ``dask`` (``address``, ``n_workers``, ...)."""
    kinds = {"serial": SerialExecutor, "local": LocalProcessExecutor, "dask": DaskExecutor}
    try:
        cls = kinds[kind]
    except KeyError:
        raise ConfigError(f"unknown executor {kind!r}; use one of {', '.join(kinds)}") from None
    return cls(**kw)
