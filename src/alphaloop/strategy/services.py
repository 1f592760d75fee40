"""What a runner lends a strategy beyond market data: the ML predictor and the sentiment source.

The backtester and the live runner build the same ``Services``; the strategy never knows whether the
predictor is an in-process ONNX session or a gRPC client. ``gather`` asks several sources at once:
live, concurrently under a deadline (a slow or failing source counts as missing and never blocks the
engine); in a backtest, one after the other with no deadline, because simulated time does not pass
while code runs, which keeps backtests reproducible on any machine.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from alphaloop.core.predictions import Prediction, Sentiment


class Predictor(Protocol):
    task: str  # "regression" (value: forward return) or "classification" (value: P(up))

    def predict(self, features: Any, *, instrument: str, bar_time: Any = None,
                timeout: float | None = None) -> Prediction: ...


class SentimentSource(Protocol):
    def instrument_sentiment(self, instrument: str, at: pd.Timestamp | None = None) -> Sentiment: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """A source's answer, or why there is none."""

    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Services:
    predictor: Predictor | None = None
    sentiment: SentimentSource | None = None
    timeout_s: float = 0.25
    concurrent: bool = False  # True live: real deadlines; False in backtests: deterministic
    _pool: cf.ThreadPoolExecutor | None = field(default=None, repr=False)

    def gather(self, calls: dict[str, Callable[[], Any]]) -> dict[str, Outcome]:
        """Run each call; return its value or the reason it is missing (error, timeout, NaN)."""
        if not self.concurrent:
            return {name: _call(fn) for name, fn in calls.items()}
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(max_workers=4, thread_name_prefix="alphaloop-source")
        futures = {name: self._pool.submit(_call, fn) for name, fn in calls.items()}
        done, _ = cf.wait(futures.values(), timeout=self.timeout_s)
        return {name: (f.result() if f in done else Outcome(error=f"timeout after {self.timeout_s * 1000:.0f} ms"))
                for name, f in futures.items()}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _call(fn: Callable[[], Any]) -> Outcome:
    try:
        value = fn()
    except Exception as e:  # any source failure counts as a missing factor, with its reason
        return Outcome(error=f"{type(e).__name__}: {e}")
    number = getattr(value, "value", getattr(value, "score", None))
    if number is not None and not np.isfinite(number):
        return Outcome(error="non-finite value")
    return Outcome(value=value)


class RuntimePredictor:
    """Adapts an ML runtime to ``Predictor``: an ``InferenceRuntime``/``MicroBatcher`` (``predict(row,
    timeout=)``) or a ``CachedRuntime`` (``predict(row, instrument=, bar_time=, timeout=)``)."""

    def __init__(self, runtime: Any, task: str | None = None):
        self.runtime = runtime
        self._keyed = "instrument" in getattr(runtime.predict, "__code__", _NO_CODE).co_varnames
        inner = getattr(runtime, "predictor", runtime)  # a CachedRuntime wraps the runtime
        inner = getattr(inner, "runtime", inner)  # a MicroBatcher wraps it too
        artifact = getattr(inner, "artifact", None)
        self.task = task or getattr(artifact, "task", "regression")

    def predict(self, features: Any, *, instrument: str, bar_time: Any = None,
                timeout: float | None = None) -> Prediction:
        if self._keyed:
            return self.runtime.predict(features, instrument=instrument, bar_time=bar_time, timeout=timeout)
        return self.runtime.predict(features, timeout=timeout)


class _NoCode:
    co_varnames: tuple[str, ...] = ()


_NO_CODE = _NoCode()
