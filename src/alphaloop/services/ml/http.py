"""The ML service's process: a FastAPI app on the HTTP port with the gRPC server as a worker on the
gRPC port (both from :mod:`alphaloop.services.topology` unless given).

HTTP endpoints: ``POST /predict``, ``POST /predict/batch``, ``GET /models``, ``GET /models/{name}/metrics``
(GetModelMetrics), ``POST /train`` (TrainModels; bearer token when one is configured; 202 with the job
id), ``GET /train/{job}`` (GetTrainingStatus), ``GET /v2/models/{name}/ready`` and the KServe-v2 health
pair ``/v2/health/live|ready`` beside ``/health``, ``/metrics``.

``service="tensorrt"`` is the same service started with the GPU provider chain (TensorRT -> CUDA ->
CPU). On a host without a GPU the runtime falls down the chain by itself and the predictions say
``onnx_cpu``: the path that really answered, never a GPU path that did not run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from alphaloop.ml.errors import InferenceTimeoutError, ModelLoadError, ModelNotFoundError
from alphaloop.services import metrics
from alphaloop.services.http_app import bearer_auth, make_app
from alphaloop.services.ml.errors import BadRequest, JobNotFound, NotReady
from alphaloop.services.ml.jobs import TrainingJobs, TrainSpec
from alphaloop.services.ml.models import CPU_CHAIN, GPU_CHAIN, ModelHost
from alphaloop.services.ml.server import GrpcServerWorker, HealthBoard
from alphaloop.services.ml.service import MLCore
from alphaloop.services.topology import service as service_info

log = logging.getLogger(__name__)
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class PredictBody(BaseModel):
    model: str = Field("", max_length=128, description="Registered model; empty: the service's default model.")
    instrument: str = Field(..., min_length=1, max_length=128)
    features: list[float] | dict[str, float] = Field(
        ..., description="One row: values in the model's feature order, or a mapping name -> value in that order.")
    strategy: str | None = Field(None, max_length=128)


class PredictReply(BaseModel):
    value: float
    confidence: float
    model: str
    version: int
    path: str
    latency_ms: float
    cached: bool
    task: str


class BatchBody(BaseModel):
    model: str = Field("", max_length=128)
    instruments: str | list[str] = Field(..., description="One instrument for all rows, or one per row.")
    rows: list[list[float]] = Field(..., description="Rows of features in the model's feature order.")
    feature_names: list[str] = Field(default_factory=list, description="Optional: the columns, checked.")
    strategy: str | None = Field(None, max_length=128)


class BatchReply(BaseModel):
    values: list[float]
    confidences: list[float]
    paths: list[str]
    cached: list[bool]
    model: str
    version: int
    latency_ms: float
    task: str


class TrainBody(BaseModel):
    data_path: str = Field(..., min_length=1, max_length=4096, description="Bars file readable by the service.")
    model: Literal["lightgbm", "linear"] = "lightgbm"
    task: Literal["regression", "classification"] = "regression"
    horizon: int = Field(5, ge=1, le=10_000)
    folds: int = Field(5, ge=2, le=100)
    name: str | None = Field(None, pattern=_NAME)
    promote: bool = False
    seed: int = Field(0, ge=0, le=2**31 - 1)
    params: dict[str, float | int | bool | str] = Field(default_factory=dict)


class _Lifecycle:
    """Loads the models to serve when the app starts; frees them and the store when it stops."""

    name = "models"

    def __init__(self, host: ModelHost, jobs: TrainingJobs, store: Any, preload: Sequence[str]):
        self.host, self.jobs, self.store, self.preload = host, jobs, store, list(preload)

    def start(self) -> None:
        self.host.preload(self.preload)

    def stop(self) -> None:
        self.jobs.close()
        self.host.close()
        if self.store is not None:
            self.store.close()

    def health(self) -> dict[str, Any]:
        return self.host.health()


def build_app(settings: Any, *, service: str = "ml", model: str | None = None, preload: Sequence[str] = (),
              providers: Sequence[str] | None = None, grpc_port: int | None = None, discovery: Any = None,
              micro_batch: bool | None = None, cache_size: int = 100_000, cache_ttl_s: float | None = 60.0,
              grpc_workers: int = 16, registry: Any = None) -> FastAPI:
    """The ML service (``service`` "ml" or "tensorrt"). ``model``: the default model (empty requests
    go to it; readiness waits for it); ``preload``: more models to load at start; ``providers``: the
    chain (default CPU for "ml", TensorRT -> CUDA -> CPU for "tensorrt"); ``grpc_port``: 0 for any
    free one (see ``app.state.grpc.port``); ``discovery``: the object the discovery RPCs delegate to;
    ``registry``: a ``ModelRegistry`` (default: the project database and ``settings.models_dir``). A
    ``discovery`` object that is also a worker (``start``/``stop``/``health``, as
    :func:`~alphaloop.services.ml.discovery_backend.build_discovery`'s) starts and stops with the app."""
    info = service_info(service)
    store = None
    if registry is None:
        from alphaloop.store import SqlModelRepository, Store

        settings.ensure_dirs()
        store = Store.from_settings(settings)
        registry = SqlModelRepository(store).registry(settings.models_dir)
    chain = tuple(providers) if providers else (GPU_CHAIN if service == "tensorrt" else CPU_CHAIN)
    board = HealthBoard(model)
    host = ModelHost(registry, providers=chain, default_model=model, cache_size=cache_size, cache_ttl_s=cache_ttl_s,
                     micro_batch=(service == "tensorrt") if micro_batch is None else micro_batch,
                     on_change=board.model_changed)
    jobs = TrainingJobs(registry, host)
    core = MLCore(host, jobs, discovery=discovery, service=service)
    lifecycle = _Lifecycle(host, jobs, store, [n for n in (model, *preload) if n])
    grpc_worker = GrpcServerWorker(core, board, settings.service_host,
                                   info.grpc_port if grpc_port is None else grpc_port, max_workers=grpc_workers)
    app = make_app(service, title=f"alphaloop {service} service",
                   description="Predictions from registered ONNX models, training jobs and model metrics "
                               f"(providers: {' -> '.join(chain)}); gRPC MLService on port {grpc_worker.port}.",
                   workers=[lifecycle, *_as_worker(discovery), grpc_worker], max_body_bytes=settings.max_body_bytes,
                   health_prefixes=("/v2/health",))
    app.state.core, app.state.grpc, app.state.host = core, grpc_worker, host
    _error_handlers(app, service)
    auth = [Depends(bearer_auth(settings.service_token))]

    @app.post("/predict", response_model=PredictReply, tags=["predict"], summary="One prediction (GetPrediction)")
    def predict(body: PredictBody) -> PredictReply:
        if isinstance(body.features, dict):
            names, values = list(body.features), list(body.features.values())
        else:
            names, values = [], body.features
        p, task = core.predict(body.model, body.instrument, values, names=names, strategy=body.strategy)
        return PredictReply(value=p.value, confidence=p.confidence, model=p.model, version=p.version,
                            path=p.path.value, latency_ms=p.latency_ms, cached=p.cached, task=task)

    @app.post("/predict/batch", response_model=BatchReply, tags=["predict"], summary="Many rows (BatchPredict)")
    def predict_batch(body: BatchBody) -> BatchReply:
        widths = {len(r) for r in body.rows}
        if len(widths) > 1:
            raise BadRequest("rows", f"every row must have the same number of features, got widths {sorted(widths)}")
        instruments = [body.instruments] if isinstance(body.instruments, str) else body.instruments
        if not body.rows:
            raise BadRequest("rows", "at least one row is required")
        batch, task = core.predict_batch(body.model, instruments, body.rows, names=body.feature_names,
                                         strategy=body.strategy)
        return BatchReply(values=batch.values.tolist(), confidences=batch.confidences.tolist(),
                          paths=[p.value for p in batch.paths], cached=batch.cached.tolist(), model=batch.model,
                          version=batch.version, latency_ms=batch.latency_ms, task=task)

    @app.get("/models", tags=["models"], summary="Registered models and what this service serves")
    def models() -> dict[str, Any]:
        return {"service": service, "providers": list(chain), "default_model": model, "models": core.models()}

    @app.get("/models/{name}/metrics", tags=["models"], summary="Validation metrics (GetModelMetrics)")
    def model_metrics(name: str, version: int | None = Query(None, ge=1)) -> dict[str, Any]:
        return core.model_metrics(name, version)

    @app.get("/v2/models/{name}/ready", tags=["health"], summary="KServe-v2 model readiness (200 ready, 4xx not)")
    def model_ready(name: str) -> JSONResponse:
        served = host.get(name)
        body = {"name": name, "ready": served.ready, "version": served.version, "path": served.path.value}
        return JSONResponse(body, status_code=200 if served.ready else 409)

    @app.post("/train", status_code=202, tags=["train"], dependencies=auth,
              summary="Start a training job (TrainModels); returns its id")
    def train(body: TrainBody) -> dict[str, Any]:
        job = jobs.submit(TrainSpec(**body.model_dump()))
        return job.to_dict()

    @app.get("/train/{job_id}", tags=["train"], summary="A training job's status (GetTrainingStatus)")
    def train_status(job_id: str) -> dict[str, Any]:
        return jobs.get(job_id).to_dict()

    return app


def _as_worker(discovery: Any) -> list[Any]:
    """The discovery object as a worker when it is one (its scheduler runs while the service does)."""
    if discovery is not None and all(callable(getattr(discovery, m, None)) for m in ("start", "stop", "health")):
        return [discovery]
    return []


def _error_handlers(app: FastAPI, service: str) -> None:
    """The service's own errors as 4xx (the shared app maps the rest of alphaloop's errors)."""
    statuses = ((BadRequest, 422), (ModelNotFoundError, 404), (JobNotFound, 404), (NotReady, 409),
                (ModelLoadError, 409), (InferenceTimeoutError, 504))
    for cls, status in statuses:
        def handler(request: Request, e: Exception, status: int = status) -> JSONResponse:
            metrics.ERRORS.labels(service, type(e).__name__).inc()
            body = {"detail": str(e), "error": type(e).__name__}
            if isinstance(e, BadRequest):
                body["field"] = e.field
            return JSONResponse(body, status_code=status)

        app.add_exception_handler(cls, handler)


__all__ = ["BatchBody", "PredictBody", "TrainBody", "build_app"]
