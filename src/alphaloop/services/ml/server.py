"""The ML service over gRPC: the ``MLService`` servicer, the standard health service, and the worker
that runs both inside the HTTP service's process.

Every call is timed (``alphaloop_grpc_request_seconds`` by method and status code) and its failures
counted by type. Errors travel as status codes: INVALID_ARGUMENT naming the field, NOT_FOUND,
FAILED_PRECONDITION ("not ready: ..."), DEADLINE_EXCEEDED (the caller's deadline is passed to the
runtime, which stops the run when it expires), INTERNAL for anything unforeseen (logged).

Health (``grpc.health.v1.Health``): service ``""`` and ``alphaloop.ml.v1.MLService`` are SERVING while
the default model (if one is configured) serves on an ONNX path; each loaded model's name is a
service of its own, SERVING or NOT_SERVING by its readiness.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from alphaloop.core.errors import AlphaloopError, DataError
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.ml.errors import InferenceTimeoutError, ModelLoadError, ModelNotFoundError
from alphaloop.services import metrics
from alphaloop.services.ml.errors import BadRequest, JobNotFound, NotReady
from alphaloop.services.ml.jobs import TrainSpec
from alphaloop.services.ml.service import MLCore
from alphaloop.services.ml.v1 import ml_service_pb2 as pb
from alphaloop.services.ml.v1 import ml_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
SERVICE_NAME = "alphaloop.ml.v1.MLService"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def status_of(e: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status an error travels as."""
    if isinstance(e, BadRequest):
        return grpc.StatusCode.INVALID_ARGUMENT, str(e)
    if isinstance(e, ModelNotFoundError | JobNotFound):
        return grpc.StatusCode.NOT_FOUND, str(e)
    if isinstance(e, NotReady | ModelLoadError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(e) if isinstance(e, NotReady) else f"not ready: {e}"
    if isinstance(e, InferenceTimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(e)
    if isinstance(e, AlphaloopError) and isinstance(e, ValueError | DataError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(e)  # bad data, the discovery layer's DiscoveryInputError
    if isinstance(e, AlphaloopError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(e)
    return grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"


def _rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Time the call, map errors to status codes, count them."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self: MLServicer, request: Any, context: grpc.ServicerContext) -> Any:
        t0 = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return method(self, request, context)
        except Exception as e:
            code, detail = status_of(e)
            metrics.ERRORS.labels(self.core.service, type(e).__name__).inc()
            if code is grpc.StatusCode.INTERNAL:
                log.exception("%s failed", name)
            context.abort(code, detail)
        finally:
            metrics.GRPC_SECONDS.labels(self.core.service, name, code.name).observe(time.perf_counter() - t0)

    return wrapper


def _timeout(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e6 else remaining


def _spec(i: int, msg: pb.StrategySpec) -> StrategySpec:
    if not msg.name:
        raise BadRequest(f"specs[{i}].name", "a registered strategy name is required")
    try:
        params = json.loads(msg.params_json) if msg.params_json else {}
    except json.JSONDecodeError as e:
        raise BadRequest(f"specs[{i}].params_json", f"not JSON: {e}") from None
    if not isinstance(params, dict):
        raise BadRequest(f"specs[{i}].params_json", f"must be a JSON object, got {type(params).__name__}")
    return StrategySpec(msg.name, params)


def spec_message(spec: StrategySpec) -> pb.StrategySpec:
    return pb.StrategySpec(name=spec.name, params_json=json.dumps(spec.to_dict()["params"], sort_keys=True))


def training_status(job: Any) -> pb.TrainingStatus:
    return pb.TrainingStatus(job_id=job.id, status=job.status, name=job.name, version=job.version, error=job.error,
                             metrics_json=json.dumps(job.metrics, default=str), created_at=job.created_at,
                             finished_at=job.finished_at)


def feedback_job(job: Any) -> pb.FeedbackJob:
    """A discovery ``TrainingJob`` as its message."""
    def when(t: Any) -> str:
        return "" if t is None else t.isoformat()

    return pb.FeedbackJob(job_id=job.id, status=job.status, n_records=job.n_records, promoted=job.promoted,
                          champion_version=job.champion_version or "", challenger_version=job.challenger_version or "",
                          reason=job.reason, metrics_json=json.dumps(job.metrics, default=str),
                          started_at=when(job.started_at), finished_at=when(job.finished_at))


class MLServicer(pb_grpc.MLServiceServicer):
    def __init__(self, core: MLCore):
        self.core = core

    @_rpc
    def GetPrediction(self, request: pb.PredictRequest, context: grpc.ServicerContext) -> pb.PredictResponse:
        p, task = self.core.predict(request.model, request.instrument, request.features,
                                    names=request.feature_names, strategy=request.strategy,
                                    timeout=_timeout(context))
        return pb.PredictResponse(value=p.value, confidence=p.confidence, model=p.model, version=p.version,
                                  path=p.path.value, latency_ms=p.latency_ms, cached=p.cached, task=task)

    @_rpc
    def BatchPredict(self, request: pb.BatchPredictRequest,
                     context: grpc.ServicerContext) -> pb.BatchPredictResponse:
        width = request.n_features
        values = np.asarray(request.features, dtype=np.float64)
        if width == 0:
            if len(values):
                raise BadRequest("n_features", "must give the width of a row")
            width = 1
        if len(values) % width:
            raise BadRequest("features", f"{len(values)} values do not make rows of n_features={width}")
        batch, task = self.core.predict_batch(request.model, list(request.instruments), values.reshape(-1, width),
                                              names=request.feature_names, strategy=request.strategy,
                                              timeout=_timeout(context))
        return pb.BatchPredictResponse(values=batch.values.tolist(), confidences=batch.confidences.tolist(),
                                       model=batch.model, version=batch.version,
                                       paths=[p.value for p in batch.paths], cached=batch.cached.tolist(),
                                       latency_ms=batch.latency_ms, task=task)

    @_rpc
    def EvaluateStrategy(self, request: pb.EvaluateStrategyRequest,
                         context: grpc.ServicerContext) -> pb.EvaluateStrategyResponse:
        self.core.require_discovery("evaluate")  # not ready beats bad input: say what is missing first
        specs = [_spec(i, s) for i, s in enumerate(request.specs)]
        return pb.EvaluateStrategyResponse(scores=self.core.evaluate(specs, dict(request.regime)))

    @_rpc
    def SubmitBacktestFeedback(self, request: pb.SubmitBacktestFeedbackRequest,
                               context: grpc.ServicerContext) -> pb.SubmitBacktestFeedbackResponse:
        self.core.require_discovery("submit_feedback")
        records = []
        for i, text in enumerate(request.records_json):
            try:
                records.append(json.loads(text))
            except json.JSONDecodeError as e:
                raise BadRequest(f"records_json[{i}]", f"not JSON: {e}") from None
        return pb.SubmitBacktestFeedbackResponse(accepted_ids=self.core.submit_feedback(records))

    @_rpc
    def GenerateStrategy(self, request: pb.GenerateStrategyRequest,
                         context: grpc.ServicerContext) -> pb.GenerateStrategyResponse:
        found = self.core.generate(request.family, request.n, request.keep, request.seed, dict(request.regime))
        return pb.GenerateStrategyResponse(candidates=[pb.ScoredStrategy(spec=spec_message(s), score=score)
                                                       for s, score in found])

    @_rpc
    def RetrainEvaluator(self, request: pb.RetrainEvaluatorRequest,
                         context: grpc.ServicerContext) -> pb.FeedbackJob:
        return feedback_job(self.core.retrain(request.force, request.seed))

    @_rpc
    def GetFeedbackStatus(self, request: pb.FeedbackStatusRequest,
                          context: grpc.ServicerContext) -> pb.FeedbackStatusResponse:
        info = self.core.feedback_status(request.job_id, request.limit or 10)
        return pb.FeedbackStatusResponse(
            feedback_records=info["feedback_records"], new_records=info["new_records"], due=info["due"],
            due_reason=info["due_reason"], model=info["model"], policy_json=json.dumps(info["policy"]),
            champion_json=json.dumps(info["champion"], default=str), jobs=[feedback_job(j) for j in info["jobs"]])

    @_rpc
    def TrainModels(self, request: pb.TrainModelsRequest, context: grpc.ServicerContext) -> pb.TrainingStatus:
        try:
            params = json.loads(request.params_json) if request.params_json else {}
        except json.JSONDecodeError as e:
            raise BadRequest("params_json", f"not JSON: {e}") from None
        if not isinstance(params, dict):
            raise BadRequest("params_json", "must be a JSON object")
        spec = TrainSpec(data_path=request.data_path, model=request.model or "lightgbm",
                         task=request.task or "regression", horizon=request.horizon or 5, folds=request.folds or 5,
                         name=request.name or None, promote=request.promote, seed=request.seed, params=params)
        return training_status(self.core.jobs.submit(spec))

    @_rpc
    def GetTrainingStatus(self, request: pb.TrainingStatusRequest,
                          context: grpc.ServicerContext) -> pb.TrainingStatus:
        return training_status(self.core.jobs.get(request.job_id))

    @_rpc
    def GetModelMetrics(self, request: pb.ModelMetricsRequest,
                        context: grpc.ServicerContext) -> pb.ModelMetricsResponse:
        m = self.core.model_metrics(request.name, request.version or None)
        return pb.ModelMetricsResponse(name=m["name"], version=m["version"], task=m["task"], horizon=m["horizon"],
                                       metrics_json=json.dumps(m["metrics"]), aliases=m["aliases"])


class HealthBoard:
    """Keeps the gRPC health service in step with model readiness."""

    def __init__(self, default_model: str | None):
        self.servicer = health.HealthServicer()
        self.default_model = default_model
        overall = health_pb2.HealthCheckResponse.NOT_SERVING if default_model else health_pb2.HealthCheckResponse.SERVING
        for name in ("", SERVICE_NAME):
            self.servicer.set(name, overall)

    def model_changed(self, name: str, ready: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        self.servicer.set(name, status)
        if name == self.default_model:
            for service in ("", SERVICE_NAME):
                self.servicer.set(service, status)

    def shutdown(self) -> None:
        self.servicer.enter_graceful_shutdown()


class GrpcServerWorker:
    """The gRPC server as a service worker (started and stopped with the HTTP app). ``port`` 0 picks
    a free one; :attr:`port` then holds the one bound."""

    name = "grpc"

    def __init__(self, core: MLCore, board: HealthBoard, host: str, port: int, *, max_workers: int = 16,
                 grace_s: float = 2.0):
        self.core, self.board, self.host, self.port = core, board, host, port
        self.max_workers, self.grace_s = max_workers, grace_s
        self._server: grpc.Server | None = None

    def start(self) -> None:
        server = grpc.server(concurrent.futures.ThreadPoolExecutor(self.max_workers, thread_name_prefix="ml-grpc"),
                             options=[("grpc.so_reuseport", 0),  # a port taken is an error, not a silent share
                                      ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
        pb_grpc.add_MLServiceServicer_to_server(MLServicer(self.core), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.board.servicer, server)
        address = f"{self.host}:{self.port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as e:
            raise AlphaloopError(f"gRPC server cannot bind {address}: {e}") from e
        if bound == 0:
            raise AlphaloopError(f"gRPC server cannot bind {address} (in use?)")
        self.port = bound
        server.start()
        self._server = server
        log.info("gRPC %s listening on %s:%d", SERVICE_NAME, self.host, bound)

    def stop(self) -> None:
        if self._server is not None:
            self.board.shutdown()
            self._server.stop(self.grace_s).wait(self.grace_s + 1)
            self._server = None

    def health(self) -> dict[str, Any]:
        return {"ok": self._server is not None, "port": self.port}


__all__ = ["SERVICE_NAME", "GrpcServerWorker", "HealthBoard", "MLServicer", "feedback_job", "spec_message",
           "status_of", "training_status"]
