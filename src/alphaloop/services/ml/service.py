"""What the ML service does, whatever the transport: the gRPC servicer and the HTTP endpoints both
call :class:`MLCore`, so they answer alike (same validation, same errors, same metrics).

Discovery: ``EvaluateStrategy``, ``SubmitBacktestFeedback``, ``GenerateStrategy``, ``RetrainEvaluator``
and ``GetFeedbackStatus`` are delegated to an injected object with ``evaluate(specs, regime) ->
list[float] | None``, ``submit_feedback(records) -> list[str]``, ``generate(family, n, keep, seed,
regime) -> list[(StrategySpec, float)]``, ``retrain(force=, seed=) -> TrainingJob``,
``feedback_status(limit) -> dict`` and ``job(id) -> TrainingJob | None`` (duck-typed: the discovery
layer's ``InProcessML``, built by :func:`alphaloop.services.ml.discovery_backend.build_discovery`).
Without one the calls raise :class:`NotReady`; they never answer with made-up data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alphaloop.core.predictions import Prediction
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.ml.errors import InferenceTimeoutError, MLError, SchemaMismatchError
from alphaloop.ml.runtime import PredictionBatch
from alphaloop.services import metrics
from alphaloop.services.ml.errors import BadRequest, JobNotFound, NotReady
from alphaloop.services.ml.jobs import TrainingJobs
from alphaloop.services.ml.models import ModelHost, ServedModel

MAX_BATCH_ROWS = 100_000
# what EvaluateStrategy answers before the first training: remote clients read it as "no model yet"
NO_EVALUATION_MODEL = "not ready: no strategy-evaluation model has been trained yet"


class MLCore:
    def __init__(self, host: ModelHost, jobs: TrainingJobs, *, discovery: Any = None, service: str = "ml"):
        self.host = host
        self.jobs = jobs
        self.discovery = discovery
        self.service = service

    # ---- predictions ----------------------------------------------------------------------------
    def _served(self, model: str | None, names: Sequence[str]) -> ServedModel:
        served = self.host.get(model)
        if names and tuple(names) != served.runtime.columns:
            cols = served.runtime.columns
            diff = next((i for i, (a, b) in enumerate(zip(names, cols)) if a != b), min(len(names), len(cols)))
            raise BadRequest("feature_names", f"model {served.name!r} v{served.version} takes {len(cols)} features "
                                              f"of {served.runtime.schema.name!r}; got {len(names)}, first "
                                              f"difference at position {diff}")
        return served

    def predict(self, model: str | None, instrument: str, features: Any, *, names: Sequence[str] = (),
                strategy: str | None = None, timeout: float | None = None) -> tuple[Prediction, str]:
        """One row -> (prediction, task). ``features``: values in the schema's order."""
        if not instrument:
            raise BadRequest("instrument", "must be a non-empty instrument name")
        served = self._served(model, names)
        try:
            x = served.runtime.prepare_row(np.asarray(features, dtype=np.float64))
        except (SchemaMismatchError, MLError) as e:
            raise BadRequest("features", str(e)) from None
        if timeout is not None and timeout <= 0:
            raise InferenceTimeoutError("the deadline passed before the request was served")
        p = served.cached.predict(x, instrument=instrument, strategy=strategy or None, timeout=timeout)
        metrics.PREDICTION_SECONDS.labels(self.service, p.path.value).observe(p.latency_ms / 1000.0)
        metrics.CACHE.labels(self.service, "hit" if p.cached else "miss").inc()
        return p, served.task

    def predict_batch(self, model: str | None, instruments: Sequence[str], rows: Any, *,
                      names: Sequence[str] = (), strategy: str | None = None,
                      timeout: float | None = None) -> tuple[PredictionBatch, str]:
        """Rows (2-D, the schema's order) -> (batch, task); ``instruments``: one, or one per row."""
        served = self._served(model, names)
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2:
            raise BadRequest("features", f"expected rows of features (2-D), got shape {x.shape}")
        if x.shape[0] > MAX_BATCH_ROWS:
            raise BadRequest("features", f"at most {MAX_BATCH_ROWS} rows a batch, got {x.shape[0]}")
        n = x.shape[0]
        if n == 0:
            raise BadRequest("features", "at least one row is required")
        if len(instruments) not in (1, n) or not all(instruments):
            raise BadRequest("instruments", f"give one non-empty instrument for all rows or one per row "
                                            f"({n}), got {len(instruments)}")
        try:
            x32 = served.runtime.prepare_batch(x)
        except (SchemaMismatchError, MLError) as e:
            raise BadRequest("features", str(e)) from None
        if timeout is not None and timeout <= 0:
            raise InferenceTimeoutError("the deadline passed before the request was served")
        inst: str | list[str] = instruments[0] if len(instruments) == 1 else list(instruments)
        batch = served.cached.predict_batch(x32, instrument=inst, strategy=strategy or None, timeout=timeout)
        hits = int(batch.cached.sum())
        if hits:
            metrics.CACHE.labels(self.service, "hit").inc(hits)
        if n - hits:
            metrics.CACHE.labels(self.service, "miss").inc(n - hits)
        for path in set(batch.paths) if n else ():
            metrics.PREDICTION_SECONDS.labels(self.service, path.value).observe(batch.latency_ms / 1000.0)
        return batch, served.task

    # ---- models ---------------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        loaded = self.host.loaded()
        out = []
        for info in self.host.registry.list():
            served = loaded.get(info.name)
            out.append({"name": info.name, "latest_version": info.latest_version, "n_versions": info.n_versions,
                        "aliases": info.aliases, "served_version": served.version if served else None,
                        "path": served.path.value if served else None,
                        "ready": served.ready if served else False})
        return out

    def model_metrics(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Validation metrics of a version (default: the champion, else the latest)."""
        if not name:
            raise BadRequest("name", "a model name is required")
        registry = self.host.registry
        if version is None and registry.backend.get_alias(name, "champion") is not None:
            record = registry.resolve(name, alias="champion")
        else:
            record = registry.resolve(name, version)
        metrics_ = record.metrics.get("overall", record.metrics) if isinstance(record.metrics, dict) else {}
        return {"name": record.name, "version": record.version, "task": record.task, "horizon": record.horizon,
                "metrics": _finite(metrics_), "aliases": registry.backend.aliases(name)}

    # ---- discovery ------------------------------------------------------------------------------
    def require_discovery(self, method: str) -> Any:
        """The discovery object's ``method``, or NotReady saying why there is none."""
        if self.discovery is None:
            raise NotReady(f"not ready: no discovery loop is attached to this ML service ({method} unavailable)")
        fn = getattr(self.discovery, method, None)
        if fn is None:
            raise NotReady(f"not ready: the attached discovery loop ({type(self.discovery).__name__}) "
                           f"does not offer {method}")
        return fn

    def evaluate(self, specs: Sequence[StrategySpec], regime: Mapping[str, float]) -> list[float]:
        fn = self.require_discovery("evaluate")
        if not specs:
            raise BadRequest("specs", "at least one strategy spec is required")
        answer = fn(list(specs), _regime(regime))
        if answer is None:  # the loop has no strategy-evaluation model yet
            raise NotReady(NO_EVALUATION_MODEL)
        scores = [float(s) for s in answer]  # NaN: a spec the model does not cover
        if len(scores) != len(specs):
            raise MLError(f"the discovery loop scored {len(scores)} specs of {len(specs)}")
        return scores

    def submit_feedback(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        fn = self.require_discovery("submit_feedback")
        from alphaloop.discovery.errors import DiscoveryInputError
        from alphaloop.discovery.feedback import FeedbackRecord

        built = []
        for i, r in enumerate(records):
            try:
                built.append(FeedbackRecord.from_dict(r))
            except DiscoveryInputError as e:
                raise BadRequest(f"records[{i}]", str(e)) from None
        return [str(x) for x in fn(built)]

    def generate(self, family: str, n: int, keep: int, seed: int,
                 regime: Mapping[str, float]) -> list[tuple[StrategySpec, float]]:
        fn = self.require_discovery("generate")
        if not family:
            raise BadRequest("family", "a strategy family is required")
        if n < 1:
            raise BadRequest("n", f"must be >= 1, got {n}")
        if not 1 <= keep <= n:
            raise BadRequest("keep", f"must be within [1, n={n}], got {keep}")
        return [(spec, float(score)) for spec, score in fn(family, n, keep, seed, _regime(regime))]

    def retrain(self, force: bool, seed: int) -> Any:
        """Retrain the evaluation model on the attached loop's feedback (when due, or forced)."""
        fn = self.require_discovery("retrain")
        if seed < 0:
            raise BadRequest("seed", f"must be >= 0, got {seed}")
        return fn(force=bool(force), seed=int(seed))

    def feedback_status(self, job_id: str = "", limit: int = 10) -> dict[str, Any]:
        """The loop's feedback status; with ``job_id``, ``jobs`` holds that job only (JobNotFound when unknown)."""
        fn = self.require_discovery("feedback_status")
        if not 0 < limit <= 1000:
            raise BadRequest("limit", f"must be within [1, 1000], got {limit}")
        info = dict(fn(limit))
        if job_id:
            job = self.require_discovery("job")(job_id)
            if job is None:
                raise JobNotFound(f"no feedback training job {job_id!r} (latest: "
                                  f"{', '.join(j.id for j in info['jobs'][:5]) or 'none'})")
            info["jobs"] = [job]
        return info


def _regime(regime: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for k, v in regime.items():
        if not isinstance(v, int | float) or not math.isfinite(v):
            raise BadRequest(f"regime.{k}", f"must be a finite number, got {v!r}")
        out[str(k)] = float(v)
    return out


def _finite(d: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers only, NaN/inf as None (JSON has neither)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        out[k] = v if math.isfinite(v) else None
    return out


__all__ = ["MAX_BATCH_ROWS", "NO_EVALUATION_MODEL", "MLCore"]
