"""The discovery pipeline in six steps, each timed and counted:

1. submit feedback: records handed in (backtests not yet fed back) go to the ML service;
2. retrain if enough: the ML service retrains when its policy says so. With no evaluation model
   yet (or none covering a family), a seeded bootstrap batch of each such family is backtested,
   turned into feedback and a training is forced, so ``ml_confidence`` always comes from a model,
   never from a made-up number;
3. generate candidates: Optuna rounds per family, pre-screened by the model, backtested out of
   sample through the executor, told back to the study;
4. evaluate and activate the best: every candidate's out-of-sample returns scored with the DSR
   deflated for all trials run so far; composite = (ml_confidence + backtest_score) / 2; a
   candidate above ``activate_above`` becomes active (at most ``max_activate`` per run);
5. deactivate underperformers: the active strategies are re-evaluated on the same data and
   retired below ``deactivate_below``;
6. update rankings and report: the status changes of steps 4 and 5 are applied in ONE
   transaction of the :class:`StrategyBook` (a failure in any step before leaves every status as
   it was), then the ranking, the study's DSR and PBO, and the report.

The ML side and the strategy book are Protocols: the pipeline runs with the in-process
``FeedbackLoop`` (:class:`InProcessML`) or a remote ML service client, and with the project store.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.discovery.errors import DiscoveryError, DiscoveryInputError
from alphaloop.discovery.evaluator import EvaluationSettings, Evaluator, StrategyEvaluation, rank
from alphaloop.discovery.executors import Executor
from alphaloop.discovery.feedback import FeedbackRecord
from alphaloop.discovery.generation import Candidate, CandidateGenerator
from alphaloop.discovery.regime import regime_features
from alphaloop.discovery.scoring import activation_decision, backtest_score
from alphaloop.discovery.search_space import SearchSpace, default_space

__all__ = ["BookEntry", "DiscoveryConfig", "DiscoveryPipeline", "DiscoveryReport", "EvaluatorNotReady", "InProcessML",
           "MLService", "StatusChange", "StepReport", "StrategyBook"]

RANKING_SIZE = 50  # strategies listed in a report's ranking (the book may hold thousands)
STEPS = ("submit_feedback", "retrain", "generate", "evaluate_activate", "deactivate", "rank_report")


# ---------------------------------------------------------------------- protocols


@dataclass(frozen=True, slots=True)
class BookEntry:
    """A strategy as the book holds it."""

    id: str
    spec: StrategySpec
    status: str
    composite_score: float | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One strategy's new scores and (when ``status`` differs from now) its new status, with why."""

    spec: StrategySpec
    status: str
    reason: str
    ml_confidence: float | None
    backtest_score: float | None
    composite_score: float | None


@runtime_checkable
class StrategyBook(Protocol):
    """Where strategies and their statuses live (the project store implements it)."""

    def list_strategies(self, status: str | None = None) -> Sequence[Any]:
        """Records with ``id``, ``spec``, ``status`` and ``composite_score``."""
        ...

    def apply_status_changes(self, changes: Sequence[StatusChange]) -> int:
        """Create missing strategies, store scores, move statuses with an audit row each: all in ONE
        transaction; return how many statuses changed."""
        ...


@runtime_checkable
class MLService(Protocol):
    """The ML side: in-process (:class:`InProcessML`) or a remote client with the same methods."""

    def submit_feedback(self, records: Sequence[FeedbackRecord]) -> list[str]: ...

    def retrain(self, *, force: bool = False, seed: int = 0) -> Any:
        """A training job with ``id``, ``status``, ``promoted`` and ``reason``."""
        ...

    def evaluate(self, specs: Sequence[StrategySpec], regime: Mapping[str, float]) -> np.ndarray | None:
        """``ml_confidence`` per spec in [0, 1] (NaN where the model does not cover a spec), or None
        when no evaluation model is trained yet."""
        ...


class EvaluatorNotReady(DiscoveryError):
    """No strategy-evaluation model can answer yet (none trained, or none covering the family asked
    for). The ML service answers it as FAILED_PRECONDITION "not ready: ..."."""

    def __init__(self, message: str):
        super().__init__(message if message.startswith("not ready") else f"not ready: {message}")


class InProcessML:
    """:class:`MLService` over an in-process ``FeedbackLoop`` (part of the ML service's code: the
    service's gRPC calls delegate to one of these)."""

    def __init__(self, loop: Any):
        self.loop = loop

    def submit_feedback(self, records: Sequence[FeedbackRecord]) -> list[str]:
        return self.loop.submit_feedback(records)

    def retrain(self, *, force: bool = False, seed: int = 0) -> Any:
        return self.loop.retrain(force=force, seed=seed)

    def evaluate(self, specs: Sequence[StrategySpec], regime: Mapping[str, float]) -> np.ndarray | None:
        model = self.loop.evaluator()
        if model is None:
            return None
        specs = list(specs)
        out = np.full(len(specs), np.nan)
        covered = [i for i, s in enumerate(specs) if model.covers(s)]
        if covered:
            out[covered] = model.predict([specs[i] for i in covered], regime)
        return out

    def generate(self, family: str, n: int, keep: int, seed: int = 0, regime: Mapping[str, float] | None = None
                 ) -> list[tuple[StrategySpec, float]]:
        """Propose ``n`` points of ``family``'s default search space (Optuna's random sampler seeded
        with ``seed``; points the strategy refuses are dropped), score them with the champion
        evaluation model in ``regime`` and return the best ``keep`` with their scores, best first
        (ties: earlier proposal first). :class:`EvaluatorNotReady` without a model covering ``family``."""
        import optuna

        for name, v in (("n", n), ("keep", keep), ("seed", seed)):
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "seed" else 1):
                raise DiscoveryInputError(f"{name} must be an integer >= {0 if name == 'seed' else 1}, got {v!r}")
        if keep > n:
            raise DiscoveryInputError(f"keep ({keep}) must not exceed n ({n})")
        space = default_space(family)
        model = self.loop.evaluator()
        if model is None:
            raise EvaluatorNotReady("no strategy-evaluation model is trained yet: submit backtest feedback "
                                    "and retrain before generating")
        probe = space.spec(_probe_params(space))
        if not model.covers(probe):
            raise EvaluatorNotReady(f"the evaluation model v{model.version} knows {', '.join(model.families)}, "
                                    f"not {family!r}: feed back backtests of that family and retrain")
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        specs = []
        for _ in range(n):
            params = space.suggest(study.ask())
            if space.invalid_reason(params) is None:
                specs.append(space.spec(params))
        if not specs:
            return []
        scores = model.predict(specs, dict(regime or {}))
        order = sorted(range(len(specs)), key=lambda i: (-scores[i], i))[:keep]
        return [(specs[i], float(scores[i])) for i in order]

    def job(self, job_id: str) -> Any:
        """A recorded training job, or None when the id is unknown."""
        return self.loop.repo.get_job(job_id)

    def feedback_status(self, limit: int = 10) -> dict[str, Any]:
        """Feedback counts, whether retraining is due and why, the policy, the champion and the
        latest ``limit`` jobs (``TrainingJob`` objects)."""
        loop = self.loop
        is_due, why = loop.due()
        champion = loop.evaluator()
        return {"feedback_records": loop.repo.count_feedback(), "new_records": loop.repo.count_new(),
                "due": is_due, "due_reason": why, "model": loop.model_name,
                "policy": {"min_new_records": loop.policy.min_new_records, "every_hours": loop.policy.every_hours},
                "champion": None if champion is None else {"version": champion.version, "metrics": champion.metrics,
                                                           "families": list(champion.families)},
                "jobs": loop.jobs(limit)}


# ---------------------------------------------------------------------- config and report


@dataclass(frozen=True)
class DiscoveryConfig:
    """``trials``: candidates backtested per family (bootstrap included); ``batch``: candidates per
    Optuna round; ``prescreen``: proposals per kept candidate; ``bootstrap``: candidates backtested
    before the first training when there is no model; ``max_activate``: activations per run."""

    families: tuple[str, ...] = ("sma_cross",)
    trials: int = 40
    batch: int = 10
    prescreen: int = 4
    bootstrap: int = 20
    seed: int = 0
    sampler: str = "tpe"
    study_prefix: str = "discover"
    storage: str | None = None
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    max_activate: int = 3
    spaces: Mapping[str, SearchSpace] | None = None

    def __post_init__(self) -> None:
        for k in ("trials", "batch", "prescreen", "bootstrap", "max_activate"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "max_activate" else 1):
                raise DiscoveryInputError(f"{k} must be a positive integer, got {v!r}")
        if not self.families:
            raise DiscoveryInputError("no strategy family to search")

    def space(self, family: str) -> SearchSpace:
        if self.spaces and family in self.spaces:
            return self.spaces[family]
        return default_space(family)

    def study_name(self, family: str) -> str:
        return f"{self.study_prefix}-{family}-seed{self.seed}"


@dataclass
class StepReport:
    name: str
    seconds: float = 0.0
    counts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": self.seconds, "counts": dict(self.counts)}


@dataclass
class DiscoveryReport:
    steps: list[StepReport]
    executor: str
    seed: int
    candidates_tried: int
    candidates_proposed: int
    activated: list[dict[str, Any]]
    retired: list[dict[str, Any]]
    ranking: list[dict[str, Any]]
    strategies: list[dict[str, Any]]
    study: dict[str, Any]
    model: dict[str, Any]
    candidates_per_minute: float
    seconds: float
    failed: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps], "executor": self.executor, "seed": self.seed,
                "candidates_tried": self.candidates_tried, "candidates_proposed": self.candidates_proposed,
                "activated": self.activated, "retired": self.retired, "ranking": self.ranking,
                "strategies": self.strategies, "study": self.study, "model": self.model, "failed": self.failed,
                "candidates_per_minute": self.candidates_per_minute, "seconds": self.seconds}

    def comparable(self) -> dict[str, Any]:
        """The report without timings and the executor's name: equal for equal seeds and data."""
        d = copy.deepcopy(self.to_dict())
        for k in ("seconds", "candidates_per_minute", "executor"):
            d.pop(k)
        d["steps"] = [{"name": s["name"], "counts": s["counts"]} for s in d["steps"]]
        for s in d["steps"]:  # a skipped job's reason quotes the hours since the last training
            for j in s["counts"].get("jobs", []):
                j.pop("reason", None)
        for j in d["model"]["jobs"]:
            j.pop("reason", None)
        return d


# ---------------------------------------------------------------------- the pipeline

Progress = Callable[[str, int, int], None]  # (step, done, total)


def _entry(e: StrategyEvaluation, status: str) -> dict[str, Any]:
    return {"spec": e.spec.to_dict(), "ml_confidence": e.ml_confidence, "backtest_score": e.backtest_score,
            "composite_score": e.composite, "status": status, "oos_sharpe": e.sharpe,
            "dsr": None if e.score is None else e.score.dsr, "error": e.error}


class DiscoveryPipeline:
    """One discovery run over ``data`` (``{instrument: bars}``) with ``executor``, ``ml`` and ``book``."""

    def __init__(self, data: Mapping[str, pd.DataFrame], executor: Executor, ml: MLService, book: StrategyBook,
                 config: DiscoveryConfig | None = None, *, executor_name: str | None = None):
        self.config = config or DiscoveryConfig()
        self.evaluator = Evaluator(data, executor, self.config.evaluation)  # checks data against the windows
        self.executor_name = executor_name or type(executor).__name__
        self.ml, self.book = ml, book
        self.spaces = {f: self.config.space(f) for f in self.config.families}
        self.regimes = {}
        for name, d in self.evaluator.datasets.items():
            w = d.windows
            span = d.bars.iloc[w[0].test_start:w[-1].test_end]
            span.attrs.update(d.bars.attrs)
            self.regimes[name] = regime_features(span)
        self._steps = {n: StepReport(n) for n in STEPS}
        self._generators: dict[str, CandidateGenerator] = {}
        self._candidates: list[tuple[str, Candidate]] = []  # (family, candidate), in proposal order
        self._proposed = 0
        self._n_tried: dict[str, int] = {}  # candidates backtested in this run, per family
        self._failures: list[dict[str, Any]] = []  # candidates whose backtest failed, with why

    # -------------------------------------------------------------- helpers

    def _timed(self, name: str) -> Any:
        pipeline = self

        class _T:
            def __enter__(self) -> StepReport:
                self.t0 = time.perf_counter()
                return pipeline._steps[name]

            def __exit__(self, *exc: object) -> None:
                pipeline._steps[name].seconds += time.perf_counter() - self.t0
        return _T()

    def _confidence(self, specs: Sequence[StrategySpec]) -> np.ndarray | None:
        """Mean over the datasets' regimes of the model's score; None without a model."""
        if not specs:
            return np.empty(0)
        per = []
        for regime in self.regimes.values():
            r = self.ml.evaluate(list(specs), regime)
            if r is None:
                return None
            r = np.asarray(r, dtype=float)
            if r.shape != (len(specs),):
                raise DiscoveryError(f"the ML service returned {r.shape} scores for {len(specs)} strategies")
            per.append(r)
        return np.mean(per, axis=0)

    def _records(self, specs: Sequence[StrategySpec]) -> list[FeedbackRecord]:
        """One feedback record per spec and instrument: its out-of-sample metrics there, scored
        undeflated (what the model learns is a strategy's quality; the DSR deflates selection)."""
        self.evaluator.backtest(specs)
        out = []
        for spec in specs:
            ev = self.evaluator.evaluate([spec], n_trials=1)[0]
            if not ev.ok:
                continue
            for name, d in self.evaluator.datasets.items():
                r = ev.per_instrument[name]
                w = d.windows
                start, end = d.bars.index[w[0].test_start], d.bars.index[w[-1].test_end - 1]
                sc = backtest_score(r, n_trials=1, periods_per_year=d.periods_per_year)
                metrics = {"sharpe": 0.0 if math.isnan(sc.sharpe_annualised) else sc.sharpe_annualised,
                           "max_drawdown": sc.max_drawdown, "total_return": float(np.prod(1.0 + r) - 1.0)}
                rid = hashlib.sha256(f"{spec.key}|{name}|{start.value}|{end.value}|{len(d.bars)}".encode()
                                     ).hexdigest()[:24]
                out.append(FeedbackRecord(id=f"wf-{rid}", spec=spec, instrument=name, start_ns=int(start.value),
                                          end_ns=int(end.value), n_bars=len(r), regime=self.regimes[name],
                                          metrics=metrics, backtest_score=sc.score))
        return out

    def _backtest_round(self, family: str, cands: list[Candidate]) -> None:
        specs = [c.spec for c in cands]
        self.evaluator.backtest(specs)
        evs = self.evaluator.evaluate(specs, n_trials=1) if specs else []
        gen = self._generators[family]
        self._n_tried[family] = self._n_tried.get(family, 0) + len(cands)
        for c, e in zip(cands, evs, strict=True):
            if not e.ok:
                gen.tell(c, None, attrs={"error": e.error})
                self._failures.append({"family": family, "spec": c.spec.to_dict(), "error": e.error})
                continue
            gen.tell(c, {"sharpe": e.sharpe if math.isfinite(e.sharpe) else 0.0, "score": e.backtest_score,
                         "max_drawdown": e.max_drawdown, "return": e.total_return})
            self._candidates.append((family, c))

    # -------------------------------------------------------------- the run

    def run(self, pending_feedback: Sequence[FeedbackRecord] = (), *, progress: Progress | None = None,
            feedback_source: Callable[[MLService], Mapping[str, Any]] | None = None) -> DiscoveryReport:
        """Run the six steps. Step 1 submits ``pending_feedback`` and calls ``feedback_source(ml)``
        (e.g. the store's unprocessed backtests, marked processed once accepted), whose counts it
        reports. ``progress(step, done, total)`` is called as candidates are backtested."""
        cfg = self.config
        started = time.perf_counter()
        tell = progress or (lambda step, done, total: None)
        fed: list[str] = []

        with self._timed("submit_feedback") as st:
            accepted = self.ml.submit_feedback(list(pending_feedback)) if pending_feedback else []
            fed += accepted
            st.counts.update(submitted=len(pending_feedback), accepted=len(accepted))
            if feedback_source is not None:
                st.counts.update({f"stored_{k}": v for k, v in feedback_source(self.ml).items()})
        tell("submit_feedback", 1, 1)

        with self._timed("retrain") as st:
            for family, space in self.spaces.items():
                self._generators[family] = CandidateGenerator(space, study_name=cfg.study_name(family),
                                                              storage=cfg.storage, seed=cfg.seed,
                                                              sampler=cfg.sampler)  # type: ignore[arg-type]
            job = self.ml.retrain(force=False, seed=cfg.seed)
            jobs = [job]
            bootstrapped = 0
            for family, space in self.spaces.items():
                # a model must cover the family before it can pre-screen it: bootstrap until it does
                while self._needs_bootstrap(space) and self._tried(family) < cfg.trials:
                    k = min(cfg.bootstrap, cfg.trials - self._tried(family))
                    cands = self._generators[family].propose(k)
                    self._proposed += len(cands)
                    self._backtest_round(family, cands)
                    bootstrapped += len(cands)
                    records = self._records([c.spec for c in cands])
                    fed += self.ml.submit_feedback(records)
                    jobs.append(self.ml.retrain(force=True, seed=cfg.seed))
                    tell("retrain", self._tried(family), cfg.trials)
            st.counts.update(jobs=[_job(j) for j in jobs], bootstrap_candidates=bootstrapped,
                             feedback_accepted=len(fed))

        with self._timed("generate") as st:
            n_before = len(self._candidates)
            for family in self.spaces:
                gen = self._generators[family]
                while self._tried(family) < cfg.trials:
                    k = min(cfg.batch, cfg.trials - self._tried(family))
                    score_fn = None if self._needs_bootstrap(self.spaces[family]) else (
                        lambda specs: _nan_to(self._confidence(specs), 0.0))
                    before = gen.n_trials
                    cands = gen.propose(k, score_fn=score_fn, prescreen=cfg.prescreen)
                    self._proposed += gen.n_trials - before
                    self._backtest_round(family, cands)
                    tell("generate", self._tried(family), cfg.trials)
                    if not cands and gen.n_trials - before == 0:
                        break
            new_specs = [c.spec for _, c in self._candidates[n_before:]]
            records = self._records(new_specs)
            accepted = self.ml.submit_feedback(records) if records else []
            fed += accepted
            st.counts.update(candidates=len(new_specs), failed=len(self._failures), proposed=self._proposed,
                             feedback_submitted=len(records), feedback_accepted=len(accepted))

        with self._timed("evaluate_activate") as st:
            n_trials = sum(g.n_backtested() for g in self._generators.values())
            specs = list({c.spec.key: c.spec for _, c in self._candidates}.values())
            current = {r.spec.key: r for r in self.book.list_strategies()}
            active = [r for r in current.values() if r.status == "active"]
            evs = self._score(specs, n_trials)
            changes: dict[str, StatusChange] = {}
            activated = []
            eligible = [e for e in rank(evs) if e.composite is not None]
            for e in eligible:
                status = current[e.spec.key].status if e.spec.key in current else "candidate"
                d = activation_decision(e.composite, status, activate_above=cfg.evaluation.activate_above,
                                        deactivate_below=cfg.evaluation.deactivate_below)
                new = d.status
                if d.changed and new == "active" and len(activated) >= cfg.max_activate:
                    new, reason = status, f"{d.reason}, but {cfg.max_activate} already activated in this run"
                else:
                    reason = d.reason
                if new == "active" and status != "active":
                    activated.append(e)
                changes[e.spec.key] = StatusChange(e.spec, new, f"discovery: {reason}", e.ml_confidence,
                                                   e.backtest_score, e.composite)
            for e in evs:  # failed or unscored: keep the row, record why
                if e.spec.key not in changes:
                    status = current[e.spec.key].status if e.spec.key in current else "candidate"
                    changes[e.spec.key] = StatusChange(e.spec, status, "discovery: no composite score ("
                                                       f"{e.error or 'no ml_confidence'})", e.ml_confidence,
                                                       e.backtest_score, None)
            st.counts.update(evaluated=len(evs), n_trials=n_trials, activated=len(activated),
                             above_threshold=sum(1 for e in eligible
                                                 if e.composite >= cfg.evaluation.activate_above))

        with self._timed("deactivate") as st:
            retired = []
            recheck = [r.spec for r in active if r.spec.key not in {e.spec.key for e in evs}]
            revs = self._score(recheck, n_trials + len(recheck)) if recheck else []
            for e in revs:
                if e.composite is None:
                    changes[e.spec.key] = StatusChange(e.spec, "active", "discovery: re-evaluation gave no "
                                                       f"composite ({e.error or 'no ml_confidence'}); unchanged",
                                                       e.ml_confidence, e.backtest_score, None)
                    continue
                d = activation_decision(e.composite, "active", activate_above=cfg.evaluation.activate_above,
                                        deactivate_below=cfg.evaluation.deactivate_below)
                changes[e.spec.key] = StatusChange(e.spec, d.status, f"discovery: {d.reason}", e.ml_confidence,
                                                   e.backtest_score, e.composite)
            for e in evs:  # an active strategy that came up again as a candidate is judged there
                ch = changes[e.spec.key]
                if current.get(e.spec.key) is not None and current[e.spec.key].status == "active" \
                        and ch.status == "inactive":
                    retired.append(e)
            retired += [e for e in revs if changes[e.spec.key].status == "inactive"]
            st.counts.update(active_before=len(active), rechecked=len(revs), retired=len(retired))

        with self._timed("rank_report") as st:
            n_changed = self.book.apply_status_changes(list(changes.values()))
            # ties in spec-key order: the book's own tie-break (creation order, random ids) would
            # make equal runs rank equal strategies differently
            book = sorted(self.book.list_strategies(), key=lambda r: (
                r.composite_score is None, -(r.composite_score or 0.0), r.spec.key))
            ranking = [{"rank": i + 1, "spec": r.spec.to_dict(), "status": r.status,
                        "composite_score": r.composite_score} for i, r in enumerate(book[:RANKING_SIZE])]
            status_of = {r.spec.key: r.status for r in book}
            all_evs = rank(evs + revs)
            study = self._study_summary(specs, evs, n_trials)
            st.counts.update(status_changes=n_changed, strategies=len(book))
        tell("rank_report", 1, 1)

        seconds = time.perf_counter() - started
        tried = sum(self._tried(f) for f in self.spaces)
        return DiscoveryReport(
            steps=[self._steps[n] for n in STEPS], executor=self.executor_name, seed=cfg.seed,
            candidates_tried=tried, candidates_proposed=self._proposed,
            activated=[_entry(e, "active") for e in activated], retired=[_entry(e, "inactive") for e in retired],
            ranking=ranking, strategies=[_entry(e, status_of.get(e.spec.key, "candidate")) for e in all_evs],
            study=study, model=self._model_summary(jobs), failed=self._failures,
            candidates_per_minute=tried / seconds * 60.0 if seconds > 0 else math.nan, seconds=seconds)

    # -------------------------------------------------------------- pieces

    def _needs_bootstrap(self, space: SearchSpace) -> bool:
        probe = self._confidence([space.spec(_probe_params(space))])
        return probe is None or not np.isfinite(probe).all()

    def _tried(self, family: str) -> int:
        return self._n_tried.get(family, 0)

    def _score(self, specs: list[StrategySpec], n_trials: int) -> list[StrategyEvaluation]:
        if not specs:
            return []
        conf = self._confidence(specs)
        values = [None] * len(specs) if conf is None else [None if math.isnan(c) else float(c) for c in conf]
        raw = self.evaluator.evaluate(specs, n_trials=1)
        sharpes = [e.score.sharpe for e in raw if e.ok and e.score is not None and math.isfinite(e.score.sharpe)]
        return self.evaluator.evaluate(specs, n_trials=max(n_trials, len(specs)),
                                       trial_sharpes=sharpes if len(sharpes) >= 2 else None, ml_confidence=values)

    def _study_summary(self, specs: list[StrategySpec], evs: list[StrategyEvaluation], n_trials: int
                       ) -> dict[str, Any]:
        best = next((e for e in rank(evs) if e.score is not None), None)
        ok = [s for s, e in zip(specs, evs, strict=True) if e.ok]
        summary: dict[str, Any] = {
            "studies": {f: {"name": g.study_name, "trials": g.n_trials, "backtested": g.n_backtested()}
                        for f, g in self._generators.items()},
            "n_trials": n_trials, "best": None if best is None else best.to_dict(),
            "dsr": None if best is None or best.score is None else best.score.dsr,
            "pbo": self.evaluator.pbo(ok) if len(ok) >= 2 else None,
        }
        if len(ok) >= 2:
            wf = self.evaluator.walk_forward_selection(ok)
            sc = wf.score(n_trials=n_trials, periods_per_year=self.evaluator.periods_per_year)
            summary["walk_forward_selection"] = {"instrument": next(iter(self.evaluator.datasets)),
                                                 "chosen": [ok[c.index].to_dict() for c in wf.choices],
                                                 "oos_sharpe": sc.sharpe_annualised, "dsr": sc.dsr,
                                                 "backtest_score": sc.score}
        return summary

    def _model_summary(self, jobs: list[Any]) -> dict[str, Any]:
        return {"jobs": [_job(j) for j in jobs],
                "available": self._confidence([self.spaces[f].spec(_probe_params(self.spaces[f]))
                                               for f in self.spaces]) is not None}


def _probe_params(space: SearchSpace) -> dict[str, Any]:
    from alphaloop.discovery.search_space import CategoricalParam

    return {d.name: d.choices[0] if isinstance(d, CategoricalParam) else d.low for d in space.dims}


def _nan_to(a: np.ndarray | None, value: float) -> np.ndarray:
    if a is None:
        raise DiscoveryError("the evaluation model went away during the run")
    return np.where(np.isnan(a), value, a)


def _job(job: Any) -> dict[str, Any]:
    return {"status": getattr(job, "status", None), "promoted": getattr(job, "promoted", None),
            "reason": getattr(job, "reason", None), "n_records": getattr(job, "n_records", None)}
