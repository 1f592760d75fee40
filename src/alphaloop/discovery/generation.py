"""Candidate generation: an Optuna study per strategy family, with ML pre-screening.

One round proposes ``k × prescreen`` points with the sampler (``study.ask``), lets the evaluation
model score them (``ml_confidence``), keeps the ``k`` it scores highest for backtesting and tells
Optuna about every point: the kept ones with their out-of-sample objective values once backtested
(:meth:`CandidateGenerator.tell`), the discarded ones as PRUNED (with the model's score as the
intermediate value on single-objective studies, so TPE ranks them below every completed trial),
and points the strategy itself refuses (its ``validate``) as FAIL, which samplers ignore.

Determinism: the sampler is rebuilt at the start of every round with a seed derived from the
study seed and the number of trials already in the study. Optuna's samplers are deterministic
given their seed and the trial history, so the same seed gives the same candidates, and a study
stopped after a round and resumed (same storage and study name, ``load_if_exists``) continues
exactly as an uninterrupted one with the same rounds would.

Storage: an RDB URL. Optuna keeps its own Alembic revision in a table named ``alembic_version``,
the same name alphaloop's schema uses, so the two must not share a namespace: on PostgreSQL the
study lives in the schema ``optuna`` of the project database, on SQLite in a sibling file
(:func:`optuna_storage_url`).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.discovery.errors import DiscoveryError, DiscoveryInputError
from alphaloop.discovery.search_space import SearchSpace

__all__ = ["OBJECTIVES", "Candidate", "CandidateGenerator", "optuna_storage_url"]

# objective name -> Optuna direction
OBJECTIVES: dict[str, str] = {"sharpe": "maximize", "score": "maximize", "return": "maximize",
                              "max_drawdown": "minimize"}
OPTUNA_SCHEMA = "optuna"

ScoreFn = Callable[[list[StrategySpec]], np.ndarray]  # specs -> ml_confidence in [0, 1]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A proposed strategy kept for backtesting: the Optuna trial it came from and the model's score
    (None when no evaluation model was asked, e.g. the bootstrap round)."""

    trial_number: int
    spec: StrategySpec
    ml_confidence: float | None


def optuna_storage_url(project_url: str) -> str:
    """Where a project database keeps its Optuna studies (see the module doc for why not alongside).

    ``sqlite:///x/alphaloop.db`` -> ``sqlite:///x/alphaloop-optuna.db``; PostgreSQL: the same URL
    (the generator selects the ``optuna`` schema); in-memory SQLite stays in memory.
    """
    if project_url.startswith("sqlite"):
        prefix, _, path = project_url.partition(":///")
        if not path or path == ":memory:":
            return project_url
        p = Path(path)
        return f"{prefix}:///{p.with_name(p.stem + '-optuna' + (p.suffix or '.db'))}"
    return project_url


def _storage(url: str | None) -> Any:
    import optuna

    if url is None:
        return optuna.storages.InMemoryStorage()
    if not isinstance(url, str) or "://" not in url:
        raise DiscoveryInputError(f"study storage must be a database URL (sqlite:///file.db, "
                                  f"postgresql://...), got {url!r}")
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]  # the driver alphaloop installs
    if url.startswith("postgresql"):
        _ensure_schema(url)
        engine_kwargs["connect_args"] = {"options": f"-csearch_path={OPTUNA_SCHEMA}", "connect_timeout": 5}
    elif url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 30}
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as e:  # unreachable server, bad URL, incompatible schema
        shown = url.split("@")[-1]
        raise DiscoveryError(f"cannot open the Optuna study storage ({shown}): "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if url.startswith("sqlite") and ":memory:" not in url:
        _fast_sqlite(storage.engine)
    return storage


def _fast_sqlite(engine: Any) -> None:
    # Optuna commits on every ask, suggest and tell; with SQLite's default full sync per commit
    # that is most of a discovery run. WAL + synchronous=NORMAL stays safe against a crashed
    # process (only a power cut can lose the last commits).
    from sqlalchemy import event

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened while Optuna set up its tables reconnect with the pragmas


def _ensure_schema(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = None
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 5})
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
    except Exception as e:
        raise DiscoveryError(f"cannot open the Optuna study storage ({url.split('@')[-1]}): "
                             f"{(str(e).splitlines() or [type(e).__name__])[0]}") from None
    finally:
        if engine is not None:
            engine.dispose()


def _round_seed(seed: int, n_trials: int) -> int:
    return int(np.random.SeedSequence([seed, n_trials]).generate_state(1)[0])


class CandidateGenerator:
    """An Optuna study over one :class:`SearchSpace`.

    ``sampler``: ``"tpe"`` (one objective) or ``"nsga2"`` (several). ``objectives`` are names from
    :data:`OBJECTIVES` (default: out-of-sample Sharpe; NSGA-II: Sharpe and max drawdown).
    ``storage``: a database URL (``None``: in memory, not resumable); the study is created or, with
    the same ``study_name``, loaded and continued.
    """

    def __init__(self, space: SearchSpace, *, study_name: str, storage: str | None = None, seed: int = 0,
                 sampler: Literal["tpe", "nsga2"] = "tpe", objectives: Sequence[str] | None = None,
                 n_startup_trials: int = 10, population_size: int = 20):
        import optuna

        if not isinstance(space, SearchSpace):
            raise DiscoveryInputError(f"space must be a SearchSpace, got {type(space).__name__}")
        if sampler not in ("tpe", "nsga2"):
            raise DiscoveryInputError(f"sampler must be 'tpe' or 'nsga2', got {sampler!r}")
        objectives = tuple(objectives or (("sharpe",) if sampler == "tpe" else ("sharpe", "max_drawdown")))
        bad = [o for o in objectives if o not in OBJECTIVES]
        if bad:
            raise DiscoveryInputError(f"unknown objective(s) {', '.join(bad)}; known: {', '.join(OBJECTIVES)}")
        if sampler == "tpe" and len(objectives) != 1:
            raise DiscoveryInputError(f"TPE takes one objective, got {len(objectives)}: use sampler='nsga2'")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise DiscoveryInputError(f"seed must be an integer, got {seed!r}")
        if not study_name or not isinstance(study_name, str):
            raise DiscoveryInputError(f"study_name must be a non-empty string, got {study_name!r}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space, self.seed, self.sampler_kind, self.objectives = space, seed, sampler, objectives
        self.n_startup_trials, self.population_size = n_startup_trials, population_size
        try:
            self.study = optuna.create_study(storage=_storage(storage), study_name=study_name,
                                             directions=[OBJECTIVES[o] for o in objectives],
                                             sampler=self._sampler(seed), load_if_exists=True)
        except ValueError as e:  # an existing study with other directions
            raise DiscoveryInputError(f"study {study_name!r}: {e}") from None
        saved = self.study.user_attrs.get("family")
        if saved is None:
            self.study.set_user_attr("family", space.family)
            self.study.set_user_attr("objectives", list(objectives))
        elif saved != space.family or list(self.study.user_attrs.get("objectives", [])) != list(objectives):
            raise DiscoveryInputError(f"study {study_name!r} searches {saved} for "
                                      f"{self.study.user_attrs.get('objectives')}, not {space.family} for "
                                      f"{list(objectives)}: use another study name")
        self._abandon_stale()
        self._open: dict[int, Any] = {}  # trial number -> live Trial asked and not yet told

    def _sampler(self, seed: int) -> Any:
        import optuna

        if self.sampler_kind == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials)
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=self.population_size)

    def _abandon_stale(self) -> None:
        # trials a crashed run left RUNNING would count as pending for ever (constant liar)
        from optuna.trial import TrialState

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)

    @property
    def study_name(self) -> str:
        return self.study.study_name

    @property
    def n_trials(self) -> int:
        """Every trial of the study: completed, pruned (screened out) and failed."""
        return len(self.study.get_trials(deepcopy=False))

    def n_backtested(self) -> int:
        """Trials that were backtested (completed or failed in the backtest), for DSR deflation."""
        return sum(1 for t in self.study.get_trials(deepcopy=False) if t.user_attrs.get("backtested"))

    def propose(self, k: int, *, score_fn: ScoreFn | None = None, prescreen: int = 4) -> list[Candidate]:
        """One round: ask ``k × prescreen`` points (``k`` without a ``score_fn``), keep the ``k`` the
        model scores highest (ties: earlier trial first). Points the strategy refuses are told
        FAIL and not replaced, so fewer than ``k`` may come back."""
        from optuna.trial import TrialState

        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise DiscoveryInputError(f"k must be an integer >= 1, got {k!r}")
        if isinstance(prescreen, bool) or not isinstance(prescreen, int) or prescreen < 1:
            raise DiscoveryInputError(f"prescreen must be an integer >= 1, got {prescreen!r}")
        if self._open:
            raise DiscoveryError(f"{len(self._open)} candidate(s) of the last round were never told")
        self.study.sampler = self._sampler(_round_seed(self.seed, self.n_trials))
        n_ask = k * prescreen if score_fn is not None else k
        asked: list[tuple[Any, StrategySpec]] = []
        for _ in range(n_ask):
            trial = self.study.ask()
            params = self.space.suggest(trial)
            why = self.space.invalid_reason(params)
            if why is not None:
                trial.set_user_attr("invalid", why)
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            asked.append((trial, self.space.spec(params)))
        if not asked:
            return []
        conf: list[float | None] = [None] * len(asked)
        if score_fn is not None:
            scores = np.asarray(score_fn([s for _, s in asked]), dtype=float)
            if scores.shape != (len(asked),) or not np.all((scores >= 0) & (scores <= 1)):
                raise DiscoveryError(f"the evaluation model returned {scores.shape} scores "
                                     f"(expected {len(asked)} within [0, 1])")
            conf = [float(x) for x in scores]
        order = sorted(range(len(asked)), key=lambda i: (-(conf[i] or 0.0), i))
        keep = set(order[:k])
        out = []
        for i, (trial, spec) in enumerate(asked):
            if conf[i] is not None:
                trial.set_user_attr("ml_confidence", conf[i])
            if i in keep:
                self._open[trial.number] = trial
                out.append(Candidate(trial.number, spec, conf[i]))
            else:
                if len(self.objectives) == 1:
                    trial.report(conf[i] if conf[i] is not None else 0.0, step=0)
                trial.set_user_attr("screened_out", True)
                self.study.tell(trial, state=TrialState.PRUNED)
        return out

    def tell(self, candidate: Candidate | int, values: dict[str, float] | None, *,
             attrs: dict[str, Any] | None = None) -> None:
        """Finish a kept candidate: its objective values (by name), or None when its backtest failed."""
        from optuna.trial import TrialState

        number = candidate.trial_number if isinstance(candidate, Candidate) else int(candidate)
        trial = self._open.pop(number, None)
        if trial is None:
            raise DiscoveryError(f"trial {number} is not an open candidate of study {self.study_name!r}")
        trial.set_user_attr("backtested", True)
        for key, v in (attrs or {}).items():
            trial.set_user_attr(key, v)
        if values is None:
            self.study.tell(trial, state=TrialState.FAIL)
            return
        missing = [o for o in self.objectives if o not in values]
        if missing:
            raise DiscoveryInputError(f"trial {number}: missing objective value(s) {', '.join(missing)}")
        vals = [float(values[o]) for o in self.objectives]
        if not all(math.isfinite(v) for v in vals):
            trial.set_user_attr("invalid", f"non-finite objective {vals}")
            self.study.tell(trial, state=TrialState.FAIL)
            return
        self.study.tell(trial, vals)

    def abandon(self) -> None:
        """Tell every open candidate FAIL (a round that could not be backtested)."""
        from optuna.trial import TrialState

        for number in list(self._open):
            self.study.tell(self._open.pop(number), state=TrialState.FAIL)

    def history(self) -> list[dict[str, Any]]:
        """Every trial: number, state, params, values and attributes (for reports and tests)."""
        return [{"number": t.number, "state": t.state.name, "params": dict(t.params),
                 "values": None if t.values is None else list(t.values), "user_attrs": dict(t.user_attrs)}
                for t in self.study.get_trials(deepcopy=False)]


logging.getLogger("optuna").setLevel(logging.WARNING)
