"""Training jobs (``TrainModels``): walk-forward training, ONNX export and registration, run on a
background thread so the request returns at once with a job id.

The request is checked before a job exists: the bars file is loaded and validated then, so a bad
file or parameter is a 4xx / INVALID_ARGUMENT naming it, never a job that fails later for a reason
the caller could have been told. Jobs are kept in memory (a restart forgets them; the models they
registered stay in the registry). One job trains at a time; others wait queued.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alphaloop.core.errors import DataError
from alphaloop.ml.features import TASKS
from alphaloop.ml.registry import CHAMPION, ModelRegistry
from alphaloop.ml.training import MODELS
from alphaloop.services.ml.errors import BadRequest, JobNotFound
from alphaloop.services.ml.models import ModelHost

log = logging.getLogger(__name__)
MAX_JOBS_KEPT = 1000  # finished jobs beyond this are forgotten, oldest first


@dataclass(frozen=True)
class TrainSpec:
    """What to train. Empty values take the defaults of ``alphaloop ml train``."""

    data_path: str
    model: str = "lightgbm"
    task: str = "regression"
    horizon: int = 5
    folds: int = 5
    name: str | None = None
    promote: bool = False
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingJob:
    id: str
    spec: TrainSpec
    status: str = "queued"  # queued, running, succeeded, failed
    name: str = ""
    version: int = 0
    error: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    finished_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.id, "status": self.status, "name": self.name, "version": self.version,
                "error": self.error, "metrics": self.metrics, "created_at": self.created_at,
                "finished_at": self.finished_at, "data_path": self.spec.data_path, "model": self.spec.model,
                "task": self.spec.task, "horizon": self.spec.horizon}


def model_name(instrument: str, model: str, task: str, horizon: int) -> str:
    """The registry name ``alphaloop ml train`` would give (INSTRUMENT-MODEL-TASK-hHORIZON)."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in instrument).strip("._-") or "model"
    return f"{safe}-{model}-{task[:3]}-h{horizon}"


class TrainingJobs:
    """Submit, run and report training jobs against ``registry``; ``host`` reloads a model it serves
    once a new version of it is promoted."""

    def __init__(self, registry: ModelRegistry, host: ModelHost | None = None):
        self.registry = registry
        self.host = host
        self._jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="alphaloop-train")

    def submit(self, spec: TrainSpec) -> TrainingJob:
        bars = self._check(spec)
        job = TrainingJob(uuid.uuid4().hex, spec)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        self._pool.submit(self._run, job, bars)
        log.info("training job %s queued: %s %s h%d on %s", job.id, spec.model, spec.task, spec.horizon,
                 spec.data_path)
        return job

    def get(self, job_id: str) -> TrainingJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no training job {job_id!r} (jobs are kept in memory: a restart forgets them)")
        return job

    def jobs(self) -> list[TrainingJob]:
        return list(self._jobs.values())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- internals ------------------------------------------------------------------------------
    def _check(self, spec: TrainSpec) -> Any:
        from alphaloop.data import load_bars

        if spec.model not in MODELS:
            raise BadRequest("model", f"must be one of {', '.join(MODELS)}, got {spec.model!r}")
        if spec.task not in TASKS:
            raise BadRequest("task", f"must be one of {', '.join(TASKS)}, got {spec.task!r}")
        if not 1 <= spec.horizon <= 10_000:
            raise BadRequest("horizon", f"must be an integer within [1, 10000], got {spec.horizon}")
        if not 2 <= spec.folds <= 100:
            raise BadRequest("folds", f"must be an integer within [2, 100], got {spec.folds}")
        for k, v in spec.params.items():
            if not isinstance(v, bool | int | float | str) or (isinstance(v, float) and not math.isfinite(v)):
                raise BadRequest(f"params.{k}", f"must be a finite number, string or boolean, got {v!r}")
        if not spec.data_path:
            raise BadRequest("data_path", "a bars file (CSV or Parquet) is required")
        try:  # the OS may refuse the name itself (too long, a NUL byte): that is bad input too
            path = Path(spec.data_path).expanduser()
            if not path.is_file():
                raise BadRequest("data_path", f"{spec.data_path[:200]} is not a file the ML service can read")
            return load_bars(path)
        except DataError as e:
            raise BadRequest("data_path", str(e)) from None
        except (OSError, ValueError) as e:
            raise BadRequest("data_path", f"cannot read {spec.data_path[:200]!r}: {e}") from None

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.status in ("succeeded", "failed")]
        for job in sorted(finished, key=lambda j: j.created_at)[:max(0, len(self._jobs) - MAX_JOBS_KEPT)]:
            del self._jobs[job.id]

    def _run(self, job: TrainingJob, bars: Any) -> None:
        from alphaloop.ml.export import export_model
        from alphaloop.ml.training import train_model

        spec = job.spec
        job.status = "running"
        t0 = time.perf_counter()
        status = "failed"
        try:
            instrument = bars.attrs.get("instrument") or Path(spec.data_path).stem
            result = train_model(bars, model=spec.model, task=spec.task, horizon=spec.horizon,
                                 n_folds=spec.folds, seed=spec.seed, params=spec.params or None,
                                 instrument=instrument)
            name = spec.name or model_name(instrument, spec.model, spec.task, spec.horizon)
            registered = self.registry.register(export_model(result, name))
            if spec.promote or self.registry.backend.get_alias(name, CHAMPION) is None:
                self.registry.promote(name, registered.version, CHAMPION)
            job.name, job.version = name, registered.version
            job.metrics = {k: v for k, v in result.metrics.items() if not isinstance(v, list | dict)}
            if self.host is not None and (name in self.host.loaded() or name == self.host.default_model):
                self.host.reload(name)
            status = "succeeded"
            log.info("training job %s: registered %s v%d in %.1f s", job.id, name, registered.version,
                     time.perf_counter() - t0)
        except Exception as e:  # the job records why; the service goes on
            job.error = f"{type(e).__name__}: {e}"
            log.warning("training job %s failed: %s", job.id, job.error)
        finally:  # finished_at first: a poller that sees the final status also sees when it ended
            job.finished_at = time.time()
            job.status = status


__all__ = ["TrainSpec", "TrainingJob", "TrainingJobs", "model_name"]
