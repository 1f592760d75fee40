"""Clients of the ML service.

* :class:`MLGrpcClient`: one channel for the client's life (connections are reused), a deadline on
  every call, retries with exponential backoff and jitter on UNAVAILABLE, DEADLINE_EXCEEDED and
  RESOURCE_EXHAUSTED only (a malformed request fails at once), the standard health check, and the
  discovery calls (``evaluate``, ``submit_feedback``, ``generate``, ``retrain_evaluator``,
  ``feedback_status``) a remote feedback loop needs (:mod:`.remote_discovery` builds on them).
* :class:`MLHttpClient`: the same prediction calls over HTTP (httpx, one keep-alive pool), retrying
  connection failures, timeouts, 429 and 503.

Both raise, after the retries: :class:`RemoteUnavailable` (nothing answered), :class:`RemoteTimeout`
(every attempt ran past its deadline), :class:`RemoteInvalidArgument`, :class:`RemoteNotFound`,
:class:`RemoteNotReady` or :class:`RemoteError`. The predictors built on them (circuit breaker,
failover, cache) are in :mod:`.failover` and re-exported here.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alphaloop.core.predictions import InferencePath, Prediction
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.ml.runtime import PredictionBatch
from alphaloop.services.ml.breaker import CircuitBreaker
from alphaloop.services.ml.errors import (
    RemoteError,
    RemoteInvalidArgument,
    RemoteNotFound,
    RemoteNotReady,
    RemoteTimeout,
    RemoteUnavailable,
)
from alphaloop.services.ml.v1 import ml_service_pb2 as pb
from alphaloop.services.ml.v1 import ml_service_pb2_grpc as pb_grpc

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.RESOURCE_EXHAUSTED})
_PATHS = {p.value: p for p in InferencePath}


def _path(value: str) -> InferencePath:
    return _PATHS.get(value, InferencePath.DEFAULT)


def _features(features: Any) -> tuple[list[float], list[str]]:
    """A row as (values, names): names only when the caller named the features (then they are checked)."""
    if isinstance(features, Mapping):
        return [float(v) for v in features.values()], [str(k) for k in features]
    if hasattr(features, "index") and hasattr(features, "to_numpy"):  # a pandas Series
        return features.to_numpy(dtype=np.float64).tolist(), [str(k) for k in features.index]
    return np.asarray(features, dtype=np.float64).ravel().tolist(), []


def _rows(rows: Any) -> tuple[np.ndarray, list[str]]:
    if hasattr(rows, "columns") and hasattr(rows, "to_numpy"):  # a DataFrame
        return rows.to_numpy(dtype=np.float64), [str(c) for c in rows.columns]
    if isinstance(rows, Sequence) and rows and isinstance(rows[0], Mapping):
        names = [str(k) for k in rows[0]]
        return np.asarray([[float(v) for v in r.values()] for r in rows], dtype=np.float64), names
    x = np.asarray(rows, dtype=np.float64)
    return (x.reshape(0, 0) if x.size == 0 else x), []


class _Backoff:
    """Exponential backoff with full jitter: attempt k waits uniform(0, min(cap, base * 2**k))."""

    def __init__(self, base_s: float, cap_s: float):
        self.base_s, self.cap_s = base_s, cap_s

    def delay(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.cap_s, self.base_s * (2 ** attempt)))


class _Predicts:
    """The strategy's Predictor call on top of a client's ``predict_remote`` (which also returns the
    model's task)."""

    def predict(self, features: Any, *, instrument: str, model: str = "", strategy: str | None = None,
                timeout: float | None = None) -> Prediction:
        return self.predict_remote(features, instrument=instrument, model=model, strategy=strategy,  # type: ignore[attr-defined]
                                   timeout=timeout)[0]


class MLGrpcClient(_Predicts):
    """``target`` is ``host:port``. ``timeout_s``: the default deadline of one attempt; ``retries``:
    extra attempts on a retryable code; ``backoff_s`` / ``max_backoff_s``: the backoff's base and cap.
    Close it (or use it as a context manager) to release the channel."""

    def __init__(self, target: str, *, timeout_s: float = 1.0, retries: int = 2, backoff_s: float = 0.01,
                 max_backoff_s: float = 0.25, name: str | None = None, options: Sequence[tuple[str, Any]] = ()):
        self.target = target
        self.name = name or f"grpc://{target}"
        self.timeout_s = timeout_s
        self.retries = retries
        self._backoff = _Backoff(backoff_s, max_backoff_s)
        # Reconnect quickly after the service comes back: the default backoff can wait 20 s or more.
        opts = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000),
                ("grpc.min_reconnect_backoff_ms", 100), ("grpc.enable_retries", 0), *options]
        self._channel = grpc.insecure_channel(target, options=opts)
        self._stub = pb_grpc.MLServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self.attempts = 0  # calls sent, retries included

    # ---- the retry loop -------------------------------------------------------------------------
    def _call(self, method: Callable[..., Any], request: Any, timeout: float | None, *,
              retries: int | None = None, attempt_s: float | None = None) -> Any:
        """Send with retries. ``timeout``: the whole call's budget, retries included (each attempt gets
        ``attempt_s`` (default ``timeout_s``) or what is left, whichever is less); None: ``attempt_s``
        per attempt. ``retries`` overrides the client's (0 for a call that must not run twice)."""
        retries = self.retries if retries is None else retries
        attempt_s = self.timeout_s if attempt_s is None else attempt_s
        start = time.monotonic()
        deadline = start + (attempt_s * (retries + 1) if timeout is None else timeout)
        attempt = 0
        while True:
            self.attempts += 1
            budget = min(attempt_s, deadline - time.monotonic())
            try:
                if budget <= 0:
                    raise RemoteTimeout(f"no time left for attempt {attempt + 1}", service=self.name)
                return method(request, timeout=budget, wait_for_ready=False)
            except grpc.RpcError as e:
                code = e.code()
                if code not in RETRYABLE or attempt >= retries:
                    raise self._error(e) from None
                pause = self._backoff.delay(attempt)
                if time.monotonic() + pause >= deadline:
                    raise self._error(e) from None
                time.sleep(pause)
                attempt += 1

    def _error(self, e: grpc.RpcError) -> Exception:
        code, detail = e.code(), e.details() or ""
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return RemoteTimeout(detail or "deadline exceeded", service=self.name)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
            return RemoteUnavailable(detail, code=code.name, service=self.name)
        cls = {grpc.StatusCode.INVALID_ARGUMENT: RemoteInvalidArgument, grpc.StatusCode.NOT_FOUND: RemoteNotFound,
               grpc.StatusCode.FAILED_PRECONDITION: RemoteNotReady}.get(code, RemoteError)
        return cls(detail, code=code.name, service=self.name)

    # ---- predictions ----------------------------------------------------------------------------
    def predict_remote(self, features: Any, *, instrument: str, model: str = "", strategy: str | None = None,
                       timeout: float | None = None) -> tuple[Prediction, str]:
        """One row -> (prediction as the service answered it, the model's task). ``latency_ms`` is the
        round trip seen here."""
        t0 = time.perf_counter()
        values, names = _features(features)
        r = self._call(self._stub.GetPrediction,
                       pb.PredictRequest(model=model, instrument=instrument, features=values, feature_names=names,
                                         strategy=strategy or ""), timeout)
        return Prediction(r.value, r.confidence, r.model, r.version, _path(r.path),
                          (time.perf_counter() - t0) * 1000.0, r.cached), r.task

    def predict_batch(self, rows: Any, *, instruments: str | Sequence[str], model: str = "",
                      strategy: str | None = None, timeout: float | None = None) -> PredictionBatch:
        t0 = time.perf_counter()
        x, names = _rows(rows)
        insts = [instruments] if isinstance(instruments, str) else list(instruments)
        r = self._call(self._stub.BatchPredict,
                       pb.BatchPredictRequest(model=model, instruments=insts, n_features=x.shape[1] if x.ndim == 2 else 0,
                                              features=x.ravel().tolist(), feature_names=names,
                                              strategy=strategy or ""), timeout)
        paths = [_path(p) for p in r.paths]
        first = paths[0] if paths else InferencePath.DEFAULT
        return PredictionBatch(np.asarray(r.values, dtype=np.float64), np.asarray(r.confidences, dtype=np.float64),
                               model=r.model, version=r.version, path=first,
                               latency_ms=(time.perf_counter() - t0) * 1000.0,
                               cached=np.asarray(r.cached, dtype=bool),
                               paths=None if len(set(paths)) <= 1 else paths)

    # ---- health ---------------------------------------------------------------------------------
    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNKNOWN; RemoteUnavailable when nothing answers."""
        try:
            r = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service), timeout)
        except RemoteNotFound:
            return "SERVICE_UNKNOWN"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    def wait_ready(self, timeout: float) -> bool:
        """Connect now (a channel that lost its server reconnects with backoff) and wait up to
        ``timeout`` seconds for the connection; True when connected."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return False
        return True

    # ---- discovery ------------------------------------------------------------------------------
    def evaluate(self, specs: Sequence[StrategySpec], regime: Mapping[str, float], *,
                 timeout: float | None = None) -> list[float]:
        msgs = [pb.StrategySpec(name=s.name, params_json=json.dumps(s.to_dict()["params"])) for s in specs]
        r = self._call(self._stub.EvaluateStrategy,
                       pb.EvaluateStrategyRequest(specs=msgs, regime=dict(regime)), timeout)
        return list(r.scores)

    def submit_feedback(self, records: Sequence[Any], *, timeout: float | None = None) -> list[str]:
        """``records``: FeedbackRecords (or their ``to_dict()``); returns the ids the service accepted."""
        texts = [json.dumps(r.to_dict() if hasattr(r, "to_dict") else dict(r)) for r in records]
        r = self._call(self._stub.SubmitBacktestFeedback, pb.SubmitBacktestFeedbackRequest(records_json=texts),
                       timeout)
        return list(r.accepted_ids)

    def generate(self, family: str, n: int, keep: int, seed: int = 0, regime: Mapping[str, float] | None = None,
                 *, timeout: float | None = None) -> list[tuple[StrategySpec, float]]:
        r = self._call(self._stub.GenerateStrategy,
                       pb.GenerateStrategyRequest(family=family, n=n, keep=keep, seed=seed, regime=dict(regime or {})),
                       timeout)
        return [(StrategySpec(c.spec.name, json.loads(c.spec.params_json or "{}")), c.score) for c in r.candidates]

    def retrain_evaluator(self, *, force: bool = False, seed: int = 0, timeout: float = 600.0) -> Any:
        """Retrain the service's strategy-evaluation model (when due, or ``force``); waits for the job
        (up to ``timeout`` seconds, never retried: a retry could train twice) and returns it as a
        discovery ``TrainingJob``."""
        r = self._call(self._stub.RetrainEvaluator, pb.RetrainEvaluatorRequest(force=force, seed=seed), timeout,
                       retries=0, attempt_s=timeout)
        return feedback_job_from(r)

    def feedback_status(self, job_id: str | None = None, *, limit: int = 10,
                        timeout: float | None = None) -> dict[str, Any]:
        """The service's feedback counts, policy, due flag and reason, champion and jobs (``TrainingJob``s;
        with ``job_id`` that job only)."""
        r = self._call(self._stub.GetFeedbackStatus, pb.FeedbackStatusRequest(job_id=job_id or "", limit=limit),
                       timeout)
        return {"feedback_records": r.feedback_records, "new_records": r.new_records, "due": r.due,
                "due_reason": r.due_reason, "model": r.model, "policy": json.loads(r.policy_json or "null"),
                "champion": json.loads(r.champion_json or "null"), "jobs": [feedback_job_from(j) for j in r.jobs]}

    # ---- models and training --------------------------------------------------------------------
    def train(self, data_path: str, *, model: str = "lightgbm", task: str = "regression", horizon: int = 5,
              folds: int = 5, name: str | None = None, promote: bool = False, seed: int = 0,
              params: Mapping[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
        r = self._call(self._stub.TrainModels,
                       pb.TrainModelsRequest(data_path=data_path, model=model, task=task, horizon=horizon, folds=folds,
                                             name=name or "", promote=promote, seed=seed,
                                             params_json=json.dumps(dict(params or {}))), timeout)
        return _status(r)

    def training_status(self, job_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        return _status(self._call(self._stub.GetTrainingStatus, pb.TrainingStatusRequest(job_id=job_id), timeout))

    def model_metrics(self, name: str, version: int | None = None, *, timeout: float | None = None) -> dict[str, Any]:
        r = self._call(self._stub.GetModelMetrics, pb.ModelMetricsRequest(name=name, version=version or 0), timeout)
        return {"name": r.name, "version": r.version, "task": r.task, "horizon": r.horizon,
                "metrics": json.loads(r.metrics_json or "{}"), "aliases": dict(r.aliases)}

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> MLGrpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def feedback_job_from(r: pb.FeedbackJob) -> Any:
    """A ``FeedbackJob`` message as the discovery layer's ``TrainingJob``."""
    import datetime as dt

    from alphaloop.discovery.retraining import TrainingJob

    def when(text: str) -> dt.datetime | None:
        return dt.datetime.fromisoformat(text) if text else None

    return TrainingJob(id=r.job_id, status=r.status, started_at=when(r.started_at), finished_at=when(r.finished_at),
                       n_records=int(r.n_records), promoted=r.promoted, champion_version=r.champion_version or None,
                       challenger_version=r.challenger_version or None, metrics=json.loads(r.metrics_json or "{}"),
                       reason=r.reason)


def _status(r: pb.TrainingStatus) -> dict[str, Any]:
    return {"job_id": r.job_id, "status": r.status, "name": r.name, "version": r.version, "error": r.error,
            "metrics": json.loads(r.metrics_json or "{}"), "created_at": r.created_at, "finished_at": r.finished_at}


class MLHttpClient(_Predicts):
    """The ML service over HTTP at ``base_url`` (``http://host:port``). Same prediction interface as
    :class:`MLGrpcClient`; ``token`` is sent as a bearer token (needed for ``train`` when the service
    has one configured)."""

    _RETRY_STATUS = frozenset({429, 503})

    def __init__(self, base_url: str, *, timeout_s: float = 1.0, retries: int = 2, backoff_s: float = 0.01,
                 max_backoff_s: float = 0.25, token: str | None = None, name: str | None = None):
        import httpx

        self._httpx = httpx
        self.base_url = base_url.rstrip("/")
        self.name = name or self.base_url
        self.timeout_s = timeout_s
        self.retries = retries
        self._backoff = _Backoff(backoff_s, max_backoff_s)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self._lock = threading.Lock()
        self.attempts = 0

    def _request(self, method: str, path: str, *, json_body: Any = None, timeout: float | None = None,
                 params: Mapping[str, Any] | None = None) -> Any:
        httpx = self._httpx
        deadline = time.monotonic() + (self.timeout_s * (self.retries + 1) if timeout is None else timeout)
        attempt = 0
        while True:
            self.attempts += 1
            budget = min(self.timeout_s, deadline - time.monotonic())
            if budget <= 0:
                raise RemoteTimeout(f"{method} {path}: no time left for attempt {attempt + 1}", service=self.name)
            try:
                r = self._client.request(method, path, json=json_body, timeout=budget, params=params)
            except httpx.TimeoutException as e:
                failure: Exception = RemoteTimeout(f"{method} {path}: {type(e).__name__}", service=self.name)
            except httpx.TransportError as e:
                failure = RemoteUnavailable(f"{method} {path}: {type(e).__name__}: {e}", code="UNAVAILABLE",
                                            service=self.name)
            else:
                if r.status_code < 400:
                    return r.json()
                failure = self._error(r)
                if r.status_code not in self._RETRY_STATUS:
                    raise failure
            pause = self._backoff.delay(attempt)
            if attempt >= self.retries or time.monotonic() + pause >= deadline:
                raise failure
            time.sleep(pause)
            attempt += 1

    def _error(self, r: Any) -> Exception:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        detail = detail if isinstance(detail, str) else json.dumps(detail)
        status = r.status_code
        if status in self._RETRY_STATUS:
            return RemoteUnavailable(f"HTTP {status}: {detail}", code="UNAVAILABLE", service=self.name)
        if status == 504:
            return RemoteTimeout(detail, service=self.name)
        if status in (400, 422):
            return RemoteInvalidArgument(detail, code="INVALID_ARGUMENT", service=self.name)
        if status == 404:
            return RemoteNotFound(detail, code="NOT_FOUND", service=self.name)
        if status == 409:
            return RemoteNotReady(detail, code="FAILED_PRECONDITION", service=self.name)
        if status == 401:
            return RemoteError(detail, code="UNAUTHENTICATED", service=self.name)
        return RemoteError(f"HTTP {status}: {detail}", code="INTERNAL", service=self.name)

    def predict_remote(self, features: Any, *, instrument: str, model: str = "", strategy: str | None = None,
                       timeout: float | None = None) -> tuple[Prediction, str]:
        t0 = time.perf_counter()
        values, names = _features(features)
        body = {"model": model, "instrument": instrument, "strategy": strategy,
                "features": dict(zip(names, values)) if names else values}
        r = self._request("POST", "/predict", json_body=body, timeout=timeout)
        return Prediction(r["value"], r["confidence"], r["model"], r["version"], _path(r["path"]),
                          (time.perf_counter() - t0) * 1000.0, r["cached"]), r["task"]

    def predict_batch(self, rows: Any, *, instruments: str | Sequence[str], model: str = "",
                      strategy: str | None = None, timeout: float | None = None) -> PredictionBatch:
        t0 = time.perf_counter()
        x, names = _rows(rows)
        body = {"model": model, "instruments": instruments if isinstance(instruments, str) else list(instruments),
                "rows": x.tolist(), "feature_names": names, "strategy": strategy}
        r = self._request("POST", "/predict/batch", json_body=body, timeout=timeout)
        paths = [_path(p) for p in r["paths"]]
        return PredictionBatch(np.asarray(r["values"], dtype=np.float64), np.asarray(r["confidences"], dtype=np.float64),
                               model=r["model"], version=r["version"], path=paths[0] if paths else InferencePath.DEFAULT,
                               latency_ms=(time.perf_counter() - t0) * 1000.0, cached=np.asarray(r["cached"], dtype=bool),
                               paths=None if len(set(paths)) <= 1 else paths)

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """SERVING when ``/health/ready`` (or, for a model name, ``/v2/models/NAME/ready``) says ready."""
        path = f"/v2/models/{service}/ready" if service else "/health/ready"
        try:
            self._request("GET", path, timeout=timeout)
        except (RemoteNotReady, RemoteUnavailable) as e:
            if isinstance(e, RemoteUnavailable) and "HTTP 503" not in str(e):
                raise
            return "NOT_SERVING"
        except RemoteNotFound:
            return "SERVICE_UNKNOWN"
        return "SERVING"

    def models(self, *, timeout: float | None = None) -> dict[str, Any]:
        return self._request("GET", "/models", timeout=timeout)

    def model_metrics(self, name: str, version: int | None = None, *, timeout: float | None = None) -> dict[str, Any]:
        return self._request("GET", f"/models/{name}/metrics", timeout=timeout,
                             params={"version": version} if version else None)

    def train(self, data_path: str, *, timeout: float | None = None, **options: Any) -> dict[str, Any]:
        return self._request("POST", "/train", json_body={"data_path": data_path, **options}, timeout=timeout)

    def training_status(self, job_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        return self._request("GET", f"/train/{job_id}", timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> MLHttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


from alphaloop.services.ml.failover import (  # noqa: E402  (re-exported: one import for callers)
    CachedPredictor,
    FailoverPredictor,
    RemotePredictor,
)

__all__ = ["RETRYABLE", "CachedPredictor", "CircuitBreaker", "FailoverPredictor", "MLGrpcClient", "MLHttpClient",
           "RemotePredictor", "feedback_job_from"]
