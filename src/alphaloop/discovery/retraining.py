"""The ML service's side of feedback: accept records, retrain when due, keep champion and challenger.

:class:`FeedbackLoop` stores feedback in a repository (the project database through
:class:`alphaloop.store.feedback_repository.SqlFeedbackRepository`, or :class:`MemoryFeedbackRepository`),
and retrains when :func:`due` says so: at least ``min_new_records`` records arrived since the last
training, or ``every_hours`` passed since it and something new arrived. A retraining job trains

(a) the price models on fresh bars, when bars are configured (``price_data``), through
    :func:`alphaloop.ml.training.train_model`; each new version is registered with the alias
    ``challenger`` and becomes ``champion`` only where the model has none yet (replacing a price
    champion is a person's call: ``alphaloop ml models promote``);
(b) the strategy-evaluation model on all feedback except the held-out records (chosen by a hash of
    their id, so the same records are held out every time). The challenger is registered under
    ``challenger`` and promoted to ``champion`` only if its held-out MAE beats the current champion's
    on the very same held-out records (with no champion yet: the MAE of always predicting the
    training mean). A held-out record of a family a model cannot score counts as predicted by the
    training mean for that model (:func:`held_out_metrics`), so a challenger that learnt a new
    family competes with the champion on the same records.

Every job is recorded (id, status, times, counts, metrics, whether it promoted, and why).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from alphaloop.core.ids import new_id
from alphaloop.discovery.errors import DiscoveryError, DiscoveryInputError
from alphaloop.discovery.evaluation_model import (
    DEFAULT_NAME,
    HOLDOUT_FRACTION,
    StrategyEvaluationModel,
    score_metrics,
    split_holdout,
)
from alphaloop.discovery.feedback import FeedbackRecord, records_from_dicts

log = logging.getLogger("alphaloop.discovery.retraining")

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "skipped")
CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class RetrainPolicy:
    """Retrain when ``min_new_records`` new records arrived, or every ``every_hours`` (None: never by
    time) when at least one did."""

    min_new_records: int = 50
    every_hours: float | None = 24.0

    def __post_init__(self) -> None:
        n = self.min_new_records
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DiscoveryInputError(f"min_new_records must be an integer >= 1, got {n!r}")
        h = self.every_hours
        if h is not None and (isinstance(h, bool) or not isinstance(h, int | float) or not h > 0
                              or not math.isfinite(h)):
            raise DiscoveryInputError(f"every_hours must be a number > 0 or None, got {h!r}")


def _utc(t: dt.datetime) -> dt.datetime:
    if not isinstance(t, dt.datetime):
        raise DiscoveryInputError(f"expected a datetime, got {type(t).__name__}")
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def due_reason(policy: RetrainPolicy, new_records: int, last_trained_at: dt.datetime | None,
               now: dt.datetime) -> tuple[bool, str]:
    """:func:`due` with the reason, for job records and ``status`` output."""
    if new_records >= policy.min_new_records:
        return True, f"{new_records} new records >= {policy.min_new_records}"
    if policy.every_hours is None:
        return False, f"{new_records} new records < {policy.min_new_records} (no schedule)"
    if new_records == 0:
        return False, "no new records since the last training"
    if last_trained_at is None:
        return True, f"{new_records} new records and never trained on a {policy.every_hours:g} h schedule"
    hours = (_utc(now) - _utc(last_trained_at)).total_seconds() / 3600.0
    if hours >= policy.every_hours:
        return True, f"{hours:.2f} h since the last training >= {policy.every_hours:g} h, {new_records} new records"
    return False, (f"{new_records} new records < {policy.min_new_records} and {hours:.2f} h since the last "
                   f"training < {policy.every_hours:g} h")


def due(policy: RetrainPolicy, new_records: int, last_trained_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether to retrain: enough new records, or the schedule's hours passed and something new arrived."""
    return due_reason(policy, new_records, last_trained_at, now)[0]


@dataclass
class TrainingJob:
    """A retraining job. ``champion_version``/``challenger_version`` are registry versions of the
    evaluation model (the champion before the job, the one this job trained); ``promoted`` says
    whether the challenger became champion; ``reason`` why (or why the job failed or was skipped).
    ``metrics`` holds ``challenger`` and ``champion`` held-out metrics, ``baseline_mae``, the held-out
    ids' count, and ``price_models`` per instrument."""

    id: str
    status: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    n_records: int
    promoted: bool = False
    champion_version: str | None = None
    challenger_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status,
                "started_at": None if self.started_at is None else self.started_at.isoformat(),
                "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
                "n_records": self.n_records, "promoted": self.promoted, "champion_version": self.champion_version,
                "challenger_version": self.challenger_version, "metrics": self.metrics, "reason": self.reason}


@runtime_checkable
class FeedbackRepository(Protocol):
    """Where a :class:`FeedbackLoop` keeps feedback and jobs (implemented by the store)."""

    def add_feedback(self, records: Sequence[FeedbackRecord]) -> list[str]:
        """Insert records not yet held (by id); return every given id (new and already held)."""
        ...

    def feedback(self) -> list[FeedbackRecord]:
        """Every record, in the order received."""
        ...

    def count_feedback(self) -> int: ...

    def count_new(self) -> int:
        """Records no training job has used yet."""
        ...

    def mark_used(self, ids: Sequence[str], job_id: str) -> int: ...

    def save_job(self, job: TrainingJob) -> None:
        """Insert or replace the job row."""
        ...

    def get_job(self, job_id: str) -> TrainingJob | None: ...

    def list_jobs(self, limit: int = 20) -> list[TrainingJob]:
        """Newest first."""
        ...

    def last_trained_at(self) -> dt.datetime | None:
        """When the last succeeded job finished."""
        ...


class MemoryFeedbackRepository:
    """Feedback and jobs in memory (tests, one-process discovery runs)."""

    def __init__(self) -> None:
        self._records: dict[str, FeedbackRecord] = {}
        self._used: dict[str, str] = {}
        self._jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()

    def add_feedback(self, records: Sequence[FeedbackRecord]) -> list[str]:
        with self._lock:
            for r in records:
                self._records.setdefault(r.id, r)
            return [r.id for r in records]

    def feedback(self) -> list[FeedbackRecord]:
        with self._lock:
            return list(self._records.values())

    def count_feedback(self) -> int:
        return len(self._records)

    def count_new(self) -> int:
        with self._lock:
            return sum(1 for k in self._records if k not in self._used)

    def mark_used(self, ids: Sequence[str], job_id: str) -> int:
        with self._lock:
            new = [i for i in ids if i in self._records and i not in self._used]
            self._used.update(dict.fromkeys(new, job_id))
            return len(new)

    def save_job(self, job: TrainingJob) -> None:
        with self._lock:
            self._jobs[job.id] = replace(job, metrics=dict(job.metrics))

    def get_job(self, job_id: str) -> TrainingJob | None:
        return self._jobs.get(job_id)

    def list_jobs(self, limit: int = 20) -> list[TrainingJob]:
        jobs = sorted(self._jobs.values(), key=lambda j: (j.started_at or dt.datetime.min.replace(tzinfo=dt.UTC), j.id))
        return jobs[::-1][:limit]

    def last_trained_at(self) -> dt.datetime | None:
        done = [j.finished_at for j in self._jobs.values() if j.status == "succeeded" and j.finished_at]
        return max(done) if done else None


Fit = Callable[..., StrategyEvaluationModel]


class FeedbackLoop:
    """Accepts feedback, retrains when due (or forced), keeps champion/challenger. A ``FeedbackSink``.

    ``registry`` is an :class:`alphaloop.ml.registry.ModelRegistry`. ``price_data`` maps instrument ->
    bars for the price models (none: that part of a job is skipped, and the job says so).
    ``fit`` trains the evaluation model (default :meth:`StrategyEvaluationModel.fit`; a different
    learner plugs in here). ``clock`` returns the current aware datetime.
    """

    def __init__(self, feedback_repo: FeedbackRepository, registry: Any, policy: RetrainPolicy | None = None, *,
                 model_name: str = DEFAULT_NAME, price_data: Mapping[str, pd.DataFrame] | None = None,
                 price_model: str = "lightgbm", price_horizon: int = 5, holdout: float = HOLDOUT_FRACTION,
                 fit: Fit | None = None, clock: Callable[[], dt.datetime] | None = None):
        self.repo = feedback_repo
        self.registry = registry
        self.policy = policy or RetrainPolicy()
        self.model_name = model_name
        self.price_data = dict(price_data or {})
        self.price_model, self.price_horizon = price_model, price_horizon
        self.holdout = holdout
        self._fit = fit or StrategyEvaluationModel.fit
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._started = self._now()
        self._lock = threading.Lock()  # one retraining at a time (scheduler and callers)
        self._champion: StrategyEvaluationModel | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def _now(self) -> dt.datetime:
        return _utc(self._clock())

    # -------------------------------------------------------------- feedback

    def submit_feedback(self, records: Sequence[FeedbackRecord | Mapping[str, Any]]) -> list[str]:
        """Store records (or their dicts; validated, all or none); return the ids accepted, resubmitted ones included."""
        return self.repo.add_feedback(records_from_dicts(list(records)))

    # -------------------------------------------------------------- retraining

    def due(self) -> tuple[bool, str]:
        """Whether a retraining is due now, and why; before any training the schedule counts from
        when this loop started."""
        last = self.repo.last_trained_at() or self._started
        return due_reason(self.policy, self.repo.count_new(), last, self._now())

    def retrain(self, *, force: bool = False, seed: int = 0) -> TrainingJob:
        """Run a job now if due (or ``force``); otherwise return a ``skipped`` job (not recorded) saying why."""
        with self._lock:
            n_records = self.repo.count_feedback()
            is_due, why = self.due()
            if not (is_due or force):
                now = self._now()
                return TrainingJob(new_id("job"), "skipped", now, now, n_records, reason=f"not due: {why}")
            job = TrainingJob(new_id("job"), "running", self._now(), None, n_records,
                              reason=why if is_due else f"forced ({why})")
            self.repo.save_job(job)
            try:
                self._run(job, seed)
                job.status = "succeeded"
            except Exception as e:
                job.status = "failed"
                job.reason = f"{type(e).__name__}: {e}" if not isinstance(e, DiscoveryError) else str(e)
                log.warning("training job %s failed: %s", job.id, job.reason)
            job.finished_at = self._now()
            self.repo.save_job(job)
            return job

    def _run(self, job: TrainingJob, seed: int) -> None:
        job.metrics["price_models"] = self._train_price_models(seed)
        records = self.repo.feedback()
        if not records:
            raise DiscoveryInputError("no feedback records to train the evaluation model on")
        train, held = split_holdout(records, self.holdout)
        challenger = self._fit(records, seed=seed, holdout=self.holdout)
        champion = self.evaluator()
        job.champion_version = None if champion is None else champion.version
        # Both judged here, on the same held-out records with their true scores, whatever fit reports.
        baseline = float(np.mean([r.backtest_score for r in train])) if train else math.nan
        job.metrics.update(n_train=len(train), n_holdout=len(held), baseline_mae=math.nan)
        if held:
            job.metrics["challenger"] = held_out_metrics(challenger, held, baseline)
            job.metrics["baseline_mae"] = job.metrics["challenger"]["baseline_mae"]
            if champion is not None:
                job.metrics["champion"] = held_out_metrics(champion, held, baseline)
        registered = challenger.register(self.registry, self.model_name, alias=CHALLENGER)
        job.challenger_version = registered.version
        promote, job.reason = _judge(job.metrics.get("challenger", {}).get("mae", math.nan),
                                     job.metrics.get("champion"), job.metrics["baseline_mae"], champion, job.reason)
        if promote:
            self.registry.promote(self.model_name, int(registered.version), CHAMPION)
            self._champion = registered
            job.promoted = True
        self.repo.mark_used([r.id for r in records], job.id)

    def _train_price_models(self, seed: int) -> dict[str, Any]:
        if not self.price_data:
            return {"skipped": "no price data configured (pass bars to train the price models on)"}
        from alphaloop.ml.export import export_model
        from alphaloop.ml.training import train_model

        out: dict[str, Any] = {}
        for instrument, bars in self.price_data.items():
            name = _price_model_name(instrument, self.price_model, self.price_horizon)
            result = train_model(bars, model=self.price_model, horizon=self.price_horizon, seed=seed,
                                 instrument=instrument)
            art = self.registry.register(export_model(result, name), alias=CHALLENGER)
            first = self.registry.backend.get_alias(name, CHAMPION) is None
            if first:
                self.registry.promote(name, art.version, CHAMPION)
            out[instrument] = {"model": name, "version": art.version, "promoted": first,
                               "ic": result.metrics.get("ic"), "mae": result.metrics.get("mae"),
                               "n_samples": result.n_samples}
        return out

    # -------------------------------------------------------------- queries

    def evaluator(self) -> StrategyEvaluationModel | None:
        """The current champion evaluation model, or None when none was trained yet."""
        version = self.registry.backend.get_alias(self.model_name, CHAMPION)
        if version is None:
            return None
        if self._champion is None or self._champion.version != str(version):
            self._champion = StrategyEvaluationModel.load(self.registry, self.model_name, version=version)
        return self._champion

    def evaluate(self, specs: Sequence[Any], regime: Mapping[str, float]) -> list[float]:
        """The champion's ``ml_confidence`` for each spec (what the ML service's ``EvaluateStrategy`` answers)."""
        model = self.evaluator()
        if model is None:
            raise DiscoveryError(f"no strategy-evaluation model is trained yet ({self.repo.count_feedback()} "
                                 f"feedback records; retrain once there are enough)")
        return [float(x) for x in model.predict(list(specs), regime)]

    def job(self, job_id: str) -> TrainingJob:
        job = self.repo.get_job(job_id)
        if job is None:
            known = ", ".join(j.id for j in self.repo.list_jobs(5)) or "none"
            raise DiscoveryInputError(f"unknown training job {job_id!r} (latest: {known})")
        return job

    def jobs(self, limit: int = 20) -> list[TrainingJob]:
        return self.repo.list_jobs(limit)

    # -------------------------------------------------------------- scheduler

    def start_scheduler(self, interval_s: float = 60.0) -> None:
        """A daemon thread that calls ``retrain()`` (which trains only when due) every ``interval_s``."""
        if not interval_s > 0:
            raise DiscoveryInputError(f"interval_s must be > 0, got {interval_s}")
        if self._thread is not None and self._thread.is_alive():
            raise DiscoveryError("the retraining scheduler is already running")
        self._stop = threading.Event()
        stop = self._stop

        def loop() -> None:
            while not stop.wait(interval_s):
                try:
                    job = self.retrain()
                    if job.status != "skipped":
                        log.info("scheduled training job %s %s: %s", job.id, job.status, job.reason)
                except Exception:  # a failing database must not kill the scheduler: log and try again later
                    log.exception("scheduled retraining failed")

        self._thread = threading.Thread(target=loop, name="alphaloop-retrain", daemon=True)
        self._thread.start()

    def stop_scheduler(self, timeout: float | None = 30.0) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = self._stop = None


def held_out_metrics(model: StrategyEvaluationModel, held: Sequence[FeedbackRecord], baseline: float
                     ) -> dict[str, float]:
    """``model``'s metrics on ``held``; a record it cannot score (a family or parameter it never saw)
    counts as predicted by ``baseline``, the training mean: what not knowing is worth. So a champion
    and a challenger that know different families are still compared on the same records."""
    y = np.array([r.backtest_score for r in held], dtype=np.float64)
    pred = np.full(len(held), baseline, dtype=np.float64)
    covered = [i for i, r in enumerate(held) if model.covers(r.spec)]
    if covered:
        pred[covered] = model.predict_records([held[i] for i in covered])
    return {**score_metrics(y, pred, baseline), "n_uncovered": float(len(held) - len(covered))}


def _judge(mae: float, champion: Mapping[str, float] | None, baseline: float,
           current: StrategyEvaluationModel | None, why: str) -> tuple[bool, str]:
    if not math.isfinite(mae):
        return False, f"{why}; not promoted: the challenger has no held-out MAE"
    if current is None or champion is None:
        if mae < baseline:
            return True, f"{why}; promoted: first champion, held-out MAE {mae:.4f} < baseline {baseline:.4f}"
        return False, f"{why}; not promoted: held-out MAE {mae:.4f} does not beat the baseline {baseline:.4f}"
    if mae < champion["mae"]:
        return True, (f"{why}; promoted: held-out MAE {mae:.4f} < champion v{current.version}'s "
                      f"{champion['mae']:.4f}")
    return False, (f"{why}; not promoted: held-out MAE {mae:.4f} >= champion v{current.version}'s "
                   f"{champion['mae']:.4f}")


def _price_model_name(instrument: str, model: str, horizon: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in instrument).strip("._-") or "model"
    return f"{safe}-{model}-reg-h{horizon}"


__all__ = ["CHALLENGER", "CHAMPION", "JOB_STATUSES", "FeedbackLoop", "FeedbackRepository",
           "MemoryFeedbackRepository", "RetrainPolicy", "TrainingJob", "due", "due_reason", "held_out_metrics"]
