"""Predictors the strategy engine uses when the ML runners are remote (the strategy ``Predictor``
protocol: ``task`` and ``predict(features, *, instrument, bar_time=None, timeout=None)``).

* :class:`RemotePredictor`: one runner (a gRPC or HTTP client) behind its circuit breaker.
* :class:`FailoverPredictor`: the chain TensorRT runner -> ONNX runner -> default. A runner that is
  down (refused, timed out, breaker open, not ready) passes the request to the next one; when none
  answers, the default predictor does: the runtime's neutral answer (0 for a return, 0.5 for P(up)),
  confidence 0 and path ``default``, so the ML factor adds nothing and the decision records that no
  model answered. Bad input is raised, not failed over (another runner would refuse it too).
* :class:`CachedPredictor`: the ML layer's ``PredictionCache`` in front of any of them (default
  answers are never stored: a fallback must not outlive the outage that caused it).

Each prediction carries the path of the runner that answered (``tensorrt``/``cuda``/``onnx_cpu`` as
that runner reports it, or ``default``); :meth:`FailoverPredictor.stats` counts which runner did.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from alphaloop.core.predictions import InferencePath, Prediction
from alphaloop.ml.cache import CacheKey, PredictionCache
from alphaloop.ml.errors import MLError
from alphaloop.services import metrics
from alphaloop.services.ml.breaker import CircuitBreaker
from alphaloop.services.ml.errors import CircuitOpenError, RemoteInvalidArgument

log = logging.getLogger(__name__)


def _is_outage(e: BaseException) -> bool:
    """Failures that say the runner is not serving (count against its breaker); bad input does not."""
    return not isinstance(e, RemoteInvalidArgument | TypeError | ValueError)


class RemotePredictor:
    """One remote runner. ``client``: an ``MLGrpcClient`` or ``MLHttpClient``; ``model``: the registered
    name to ask for (empty: the runner's default); ``task``: the model's task if known (else learned
    from the first answer)."""

    def __init__(self, client: Any, *, name: str, model: str = "", breaker: CircuitBreaker | None = None,
                 task: str | None = None, strategy: str | None = None):
        self.client = client
        self.name = name
        self.model = model
        self.breaker = breaker or CircuitBreaker(name)
        self.strategy = strategy
        self._task = task
        self.last_model: tuple[str, int] | None = None  # (name, version) of the last answer

    @property
    def task(self) -> str:
        return self._task or "regression"

    @property
    def task_known(self) -> bool:
        return self._task is not None

    def predict(self, features: Any, *, instrument: str, bar_time: Any = None,
                timeout: float | None = None) -> Prediction:
        def ask() -> Prediction:
            p, task = self.client.predict_remote(features, instrument=instrument, model=self.model,
                                                 strategy=self.strategy, timeout=timeout)
            self._task = task or self._task
            self.last_model = (p.model, p.version)
            return p

        return self.breaker.call(ask, is_failure=_is_outage)

    def health(self) -> str:
        return self.client.health(self.model)

    def close(self) -> None:
        self.client.close()


class FailoverPredictor:
    """Ask ``runners`` in order (best first); the default predictor answers when none does.
    ``timeout`` (seconds) is the whole call's budget: each runner gets what the ones before it left."""

    def __init__(self, runners: Sequence[RemotePredictor], *, task: str | None = None, service: str = "strategy",
                 model: str = ""):
        if not runners:
            raise ValueError("a failover chain needs at least one runner")
        self.runners = list(runners)
        self._task = task
        self.service = service
        self.model = model
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.last_errors: dict[str, str] = {}

    @property
    def task(self) -> str:
        if self._task is not None:
            return self._task
        known = next((r.task for r in self.runners if r.task_known), None)
        return known or "regression"

    def _default(self, t0: float) -> Prediction:
        name, version = next((r.last_model for r in self.runners if r.last_model is not None),
                             (self.model or "default", 0))
        value = 0.5 if self.task == "classification" else 0.0
        return Prediction(value, 0.0, name, version, InferencePath.DEFAULT, (time.perf_counter() - t0) * 1000.0)

    def predict(self, features: Any, *, instrument: str, bar_time: Any = None,
                timeout: float | None = None) -> Prediction:
        t0 = time.perf_counter()
        deadline = None if timeout is None else time.monotonic() + timeout
        for runner in self.runners:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            try:
                p = runner.predict(features, instrument=instrument, bar_time=bar_time, timeout=left)
            except RemoteInvalidArgument:
                raise
            except MLError as e:  # down, timed out, open breaker, not ready, unknown model: next runner
                self._failed(runner.name, e)
                continue
            self._count(runner.name)
            metrics.PREDICTION_SECONDS.labels(self.service, p.path.value).observe(p.latency_ms / 1000.0)
            return p
        self._count("default")
        p = self._default(t0)
        metrics.PREDICTION_SECONDS.labels(self.service, p.path.value).observe(p.latency_ms / 1000.0)
        return p

    def _failed(self, runner: str, e: MLError) -> None:
        kind = "circuit_open" if isinstance(e, CircuitOpenError) else type(e).__name__
        metrics.ERRORS.labels(self.service, kind).inc()
        with self._lock:
            first = runner not in self.last_errors
            self.last_errors[runner] = str(e)
        if first and not isinstance(e, CircuitOpenError):
            log.warning("ML runner %s failed, failing over: %s", runner, e)

    def _count(self, who: str) -> None:
        with self._lock:
            self._counts[who] += 1
            if who != "default":
                self.last_errors.pop(who, None)

    def stats(self) -> dict[str, Any]:
        """Answers per runner (and ``default``), each runner's breaker, the last error of each."""
        with self._lock:
            return {"answered": dict(self._counts), "breakers": [r.breaker.snapshot() for r in self.runners],
                    "last_errors": dict(self.last_errors)}

    def close(self) -> None:
        for r in self.runners:
            r.close()


class CachedPredictor:
    """``predictor`` with a :class:`PredictionCache` in front. Keys: the model name and version of
    the last answer (a promotion on the server is seen at the next miss, and the old entries are then
    never looked up again; the TTL bounds how long that takes), the instrument, the strategy, and the
    bar time when given, else the float32 bytes of the row (what the model sees)."""

    def __init__(self, predictor: Any, cache: PredictionCache | None = None, *, strategy: str | None = None,
                 service: str = "strategy"):
        self.predictor = predictor
        self.cache = cache if cache is not None else PredictionCache()
        self.strategy = strategy
        self.service = service
        self._model: tuple[str, int] = (getattr(predictor, "model", "") or "", 0)

    @property
    def task(self) -> str:
        return self.predictor.task

    def _key(self, features: Any, instrument: str, bar_time: Hashable | None) -> CacheKey:
        if bar_time is None:
            values = features.values() if isinstance(features, Mapping) else features
            ident: Hashable = np.ascontiguousarray(np.fromiter(values, dtype=np.float32) if isinstance(
                features, Mapping) else np.asarray(values, dtype=np.float32)).tobytes()
        else:
            ident = bar_time
        return CacheKey(self._model[0], self._model[1], instrument, self.strategy, ident)

    def predict(self, features: Any, *, instrument: str, bar_time: Any = None,
                timeout: float | None = None) -> Prediction:
        t0 = time.perf_counter()
        key = self._key(features, instrument, bar_time)
        hit = self.cache.get(key)
        if hit is not None:
            metrics.CACHE.labels(self.service, "hit").inc()
            return Prediction(hit.value, hit.confidence, hit.model, hit.version, hit.path,
                              (time.perf_counter() - t0) * 1000.0, True)
        metrics.CACHE.labels(self.service, "miss").inc()
        p = self.predictor.predict(features, instrument=instrument, bar_time=bar_time, timeout=timeout)
        if p.path is not InferencePath.DEFAULT:
            if (p.model, p.version) != self._model:
                self._model = (p.model, p.version)
                key = self._key(features, instrument, bar_time)
            self.cache.put(key, p)
        return p

    def stats(self) -> dict[str, Any]:
        out = {"cache": self.cache.stats().to_dict()}
        inner = getattr(self.predictor, "stats", None)
        if callable(inner):
            out.update(inner())
        return out

    def close(self) -> None:
        close = getattr(self.predictor, "close", None)
        if callable(close):
            close()


__all__ = ["CachedPredictor", "FailoverPredictor", "RemotePredictor"]
