"""Micro-batching: single-row requests from many threads, answered by one ``session.run`` per batch.

Per-call overhead in ONNX Runtime (input binding, kernel dispatch, thread-pool wake-up) is paid once
per ``run``, so 32 rows in one run cost little more than one row. A single worker thread collects
requests until ``max_batch_size`` rows are waiting or the oldest has waited ``max_wait_us``, runs
them as one matrix, and hands each caller its own row. A request waits at most ``max_wait_us`` for
company plus the run itself; while a batch runs, new requests queue and go in the next one.

Errors: a run that raises (with ``fallback_on_error=False`` on the runtime, or anything unexpected)
reaches every caller of that batch as :class:`InferenceError`. With the runtime's default
``fallback_on_error=True`` every caller instead gets the default predictor's answer, path ``default``.
Bad input (schema, NaN) is refused in the caller's own thread before it joins a batch, so one bad
row never fails its neighbours.

Timeouts: a caller that gives up leaves its queued request to be skipped; when every caller of the
batch now running has given up, the run itself is stopped (``RunOptions.terminate``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.core.predictions import InferencePath, Prediction
from alphaloop.ml.errors import InferenceError, InferenceTimeoutError
from alphaloop.ml.runtime import InferenceRuntime, PredictionBatch


class _Request:
    """One waiting caller. ``done`` is a plain lock held until the worker answers: the cheapest
    one-shot signal in CPython (an Event is a Condition plus a lock)."""

    __slots__ = ("cancelled", "done", "error", "path", "row", "value")

    def __init__(self, row: np.ndarray):
        self.row = row
        self.done = threading.Lock()
        self.done.acquire()
        self.value = 0.0
        self.path = InferencePath.DEFAULT
        self.error: BaseException | None = None
        self.cancelled = False


@dataclass(frozen=True, slots=True)
class BatcherStats:
    requests: int
    batches: int
    rows: int
    max_batch: int
    failed_batches: int
    pending: int

    @property
    def mean_batch(self) -> float:
        return self.rows / self.batches if self.batches else 0.0


class MicroBatcher:
    """Collects concurrent :meth:`predict` calls on one runtime into batches.

    ``max_batch_size`` rows per run at most; ``max_wait_us`` how long the first request of a batch
    waits for others (microseconds). Use as a context manager or call :meth:`close`.
    """

    def __init__(self, runtime: InferenceRuntime, *, max_batch_size: int = 64, max_wait_us: float = 200.0):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_us < 0:
            raise ValueError(f"max_wait_us must be >= 0, got {max_wait_us}")
        self.runtime = runtime
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_us / 1e6
        self._queue: deque[tuple[float, _Request]] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._running: tuple[list[_Request], Any] | None = None  # the batch in session.run, its RunOptions
        self._requests = 0
        self._batches = 0
        self._rows = 0
        self._max_batch = 0
        self._failed = 0
        self._worker = threading.Thread(target=self._loop, name=f"alphaloop-batcher-{runtime.name}",
                                        daemon=True)
        self._worker.start()

    # The same surface as the runtime, so CachedRuntime can wrap either.
    @property
    def name(self) -> str:
        return self.runtime.name

    @property
    def version(self) -> int:
        return self.runtime.version

    @property
    def path(self) -> InferencePath:
        return self.runtime.path

    def prepare_row(self, features: Mapping[str, float] | pd.Series | np.ndarray, *,
                    check_finite: bool = True) -> np.ndarray:
        return self.runtime.prepare_row(features, check_finite=check_finite)

    def prepare_batch(self, rows: np.ndarray | pd.DataFrame | Sequence[Mapping[str, float]]) -> np.ndarray:
        return self.runtime.prepare_batch(rows)

    def predict(self, features: Mapping[str, float] | pd.Series | np.ndarray, *,
                timeout: float | None = None) -> Prediction:
        """One row, answered as part of a batch. Blocks until answered; ``timeout`` (seconds, counting
        the wait for the batch) raises :class:`InferenceTimeoutError`."""
        t0 = time.perf_counter()
        x = self.runtime.prepare_row(features)
        if isinstance(features, np.ndarray) and np.may_share_memory(x, features):
            x = x.copy()  # the caller's own buffer: a later write must not reach the queued batch
        req = _Request(x)
        with self._cond:
            if self._closed:
                raise InferenceError(f"micro-batcher for {self.name!r} is closed")
            self._queue.append((t0, req))
            self._requests += 1
            n = len(self._queue)
            # Wake the worker only when it has something new to decide: a first request to time, or
            # a full batch to stop waiting for.
            if n == 1 or n >= self.max_batch_size:
                self._cond.notify()
        if timeout is None:
            req.done.acquire()
        elif not req.done.acquire(timeout=max(timeout, 0.0)):
            req.cancelled = True  # if still queued the worker skips it; if running, its answer is dropped
            with self._cond:  # the last caller of a running batch to give up stops the run itself
                running = self._running
                if running is not None and req in running[0] and all(r.cancelled for r in running[0]):
                    running[1].terminate = True
            raise InferenceTimeoutError(f"model {self.name!r} v{self.version}: no answer within "
                                        f"{timeout * 1000:.1f} ms (micro-batched)")
        if req.error is not None:
            raise InferenceError(f"model {self.name!r} v{self.version}: the batch this row ran in failed: "
                                 f"{req.error}") from req.error
        value = req.value
        return Prediction(value, self.runtime.confidence(value, req.path), self.runtime.name,
                          self.runtime.version, req.path, (time.perf_counter() - t0) * 1000.0)

    def predict_batch(self, rows: np.ndarray | pd.DataFrame | Sequence[Mapping[str, float]], *,
                      timeout: float | None = None) -> PredictionBatch:
        """Already a batch: goes straight to the runtime, past the queue."""
        return self.runtime.predict_batch(rows, timeout=timeout)

    # ---- worker -------------------------------------------------------------------------------

    def _take(self) -> list[_Request] | None:
        """Wait for the next batch; None once closed and drained."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            deadline = self._queue[0][0] + self.max_wait_s
            while len(self._queue) < self.max_batch_size and not self._closed:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Request] = []
            while self._queue and len(batch) < self.max_batch_size:
                req = self._queue.popleft()[1]
                if not req.cancelled:
                    batch.append(req)
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            if batch:
                self._run(batch)

    def _run(self, batch: list[_Request]) -> None:
        run_options = self.runtime.new_run_options()
        if run_options is not None:
            with self._cond:
                self._running = (batch, run_options)
        try:
            x = batch[0].row if len(batch) == 1 else np.concatenate([r.row for r in batch])
            values, path = self.runtime.infer(x, run_options)
        except BaseException as e:  # every caller of the failed batch hears about it
            self._failed += 1
            self._running = None
            for r in batch:
                r.error = e
                r.done.release()
            return
        self._running = None  # a plain store; a timing-out caller reads it under the lock
        self._batches += 1
        self._rows += len(batch)
        self._max_batch = max(self._max_batch, len(batch))
        for r, v in zip(batch, values.tolist()):
            r.value = v
            r.path = path
            r.done.release()

    # ---- lifetime -----------------------------------------------------------------------------

    def stats(self) -> BatcherStats:
        with self._cond:
            pending = len(self._queue)
        return BatcherStats(self._requests, self._batches, self._rows, self._max_batch, self._failed, pending)

    def close(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop accepting requests. ``drain=True`` answers everything already queued; ``drain=False``
        fails queued requests with :class:`InferenceError`. Waits for the worker (up to ``timeout``)."""
        with self._cond:
            self._closed = True
            rejected: list[_Request] = []
            if not drain:
                rejected = [req for _, req in self._queue]
                self._queue.clear()
            self._cond.notify_all()
        for req in rejected:
            req.error = InferenceError("the micro-batcher was closed before this request ran")
            req.done.release()
        if threading.current_thread() is not self._worker:
            self._worker.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"MicroBatcher({self.runtime!r}, max_batch_size={self.max_batch_size}, "
                f"max_wait_us={self.max_wait_s * 1e6:g})")


__all__ = ["BatcherStats", "MicroBatcher"]
