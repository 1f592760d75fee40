"""Candidate generation with Optuna: seeded, resumable from RDB storage, pre-screened by a score."""

from __future__ import annotations

import math

import numpy as np
import pytest
from optuna.trial import TrialState

from alphaloop.discovery.errors import DiscoveryError, DiscoveryInputError
from alphaloop.discovery.generation import CandidateGenerator, optuna_storage_url
from alphaloop.discovery.search_space import IntParam, SearchSpace, default_space
from alphaloop.store import Store

SPACE = default_space("sma_cross")


def objective(spec) -> dict[str, float]:
    """A closed-form landscape with its optimum at fast=10, slow=60."""
    f, s = spec.params["fast"], spec.params["slow"]
    return {"sharpe": -abs(f - 10) - abs(s - 60) / 10.0, "max_drawdown": f / 100.0}


def run_rounds(gen: CandidateGenerator, rounds: int, k: int = 5, score_fn=None) -> list[dict]:
    out = []
    for _ in range(rounds):
        for c in gen.propose(k, score_fn=score_fn):
            gen.tell(c, objective(c.spec))
            out.append(c.spec.params)
    return out


def test_same_seed_same_candidates_other_seed_others():
    a = run_rounds(CandidateGenerator(SPACE, study_name="a", seed=7), 4)
    b = run_rounds(CandidateGenerator(SPACE, study_name="b", seed=7), 4)
    c = run_rounds(CandidateGenerator(SPACE, study_name="c", seed=8), 4)
    assert a == b and a != c and len(a) == 20


def test_tpe_learns_the_landscape():
    gen = CandidateGenerator(SPACE, study_name="learn", seed=0, n_startup_trials=10)
    params = run_rounds(gen, 8)
    first = np.mean([objective_of(p) for p in params[:10]])
    last = np.mean([objective_of(p) for p in params[-10:]])
    assert last > first  # TPE moves towards the optimum once it has history


def objective_of(p):
    return -abs(p["fast"] - 10) - abs(p["slow"] - 60) / 10.0


def test_resume_from_sqlite_equals_one_go(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    one_go = run_rounds(CandidateGenerator(SPACE, study_name="one", storage=url, seed=3), 2)
    first = run_rounds(CandidateGenerator(SPACE, study_name="two", storage=url, seed=3), 1)
    resumed = CandidateGenerator(SPACE, study_name="two", storage=url, seed=3)  # a new process would do this
    assert resumed.n_trials == 5
    second = run_rounds(resumed, 1)
    assert resumed.n_trials == 10
    assert first + second == one_go


def test_resume_from_postgresql(postgres_url):
    one_go = run_rounds(CandidateGenerator(SPACE, study_name="pg-one", storage=postgres_url, seed=5), 2)
    run_rounds(CandidateGenerator(SPACE, study_name="pg-two", storage=postgres_url, seed=5), 1)
    resumed = CandidateGenerator(SPACE, study_name="pg-two", storage=postgres_url, seed=5)
    assert run_rounds(resumed, 1) == one_go[5:] and resumed.n_trials == 10
    # the study lives in its own schema: the project's schema (same database) still opens and migrates
    with Store(postgres_url) as store:
        store.list_strategies()
        with store.engine.connect() as c:
            schemas = {row[0] for row in c.exec_driver_sql(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'trials'")}
    assert schemas == {"optuna"}


def test_prescreen_keeps_the_best_scored_and_prunes_the_rest():
    gen = CandidateGenerator(SPACE, study_name="screen", seed=1)

    def prefer_small_fast(specs):  # the score a model would give: here a closed form to check against
        return np.array([1.0 / s.params["fast"] for s in specs])

    kept = gen.propose(3, score_fn=prefer_small_fast, prescreen=4)
    hist = gen.history()
    assert len(hist) == 12 and len(kept) == 3
    scores = sorted((1.0 / h["params"]["fast"] for h in hist), reverse=True)
    assert sorted((c.ml_confidence for c in kept), reverse=True) == pytest.approx(scores[:3])
    pruned = [h for h in hist if h["state"] == "PRUNED"]
    assert len(pruned) == 9 and all(h["user_attrs"]["screened_out"] for h in pruned)
    # the model's score is the pruned trial's intermediate value, so TPE ranks it below completed ones
    trials = gen.study.get_trials(states=(TrialState.PRUNED,))
    assert all(t.intermediate_values[0] == pytest.approx(1.0 / t.params["fast"]) for t in trials)
    with pytest.raises(DiscoveryError, match="never told"):
        gen.propose(3)
    for c in kept:
        gen.tell(c, objective(c.spec))
    assert gen.n_backtested() == 3 and gen.n_trials == 12


def test_invalid_points_are_failed_not_backtested():
    space = SearchSpace("sma_cross", (IntParam("fast", 5, 50), IntParam("slow", 10, 60)))
    gen = CandidateGenerator(space, study_name="invalid", seed=0)
    kept = gen.propose(30)
    hist = gen.history()
    failed = [h for h in hist if h["state"] == "FAIL"]
    assert failed and all(h["params"]["fast"] >= h["params"]["slow"] for h in failed)
    assert all("fast < slow" in h["user_attrs"]["invalid"] for h in failed)
    assert all(c.spec.params["fast"] < c.spec.params["slow"] for c in kept)
    assert len(kept) + len(failed) == 30


def test_failed_backtest_and_bad_values():
    gen = CandidateGenerator(SPACE, study_name="fails", seed=0)
    a, b, c = gen.propose(3)
    gen.tell(a, None, attrs={"error": "boom"})
    gen.tell(b, {"sharpe": math.nan})
    with pytest.raises(DiscoveryInputError, match="missing objective value"):
        gen.tell(c, {"score": 1.0})
    states = {h["number"]: h["state"] for h in gen.history()}
    assert states[a.trial_number] == "FAIL" and states[b.trial_number] == "FAIL"
    with pytest.raises(DiscoveryError, match="not an open candidate"):
        gen.tell(a, {"sharpe": 1.0})


def test_nsga2_two_objectives_seeded():
    a = run_rounds(CandidateGenerator(SPACE, study_name="n1", seed=2, sampler="nsga2", population_size=6), 3, k=6)
    b = run_rounds(CandidateGenerator(SPACE, study_name="n2", seed=2, sampler="nsga2", population_size=6), 3, k=6)
    assert a == b
    gen = CandidateGenerator(SPACE, study_name="n3", seed=2, sampler="nsga2", population_size=6)
    run_rounds(gen, 3, k=6)
    front = gen.study.best_trials  # the Pareto front of (max sharpe, min drawdown)
    assert front and all(len(t.values) == 2 for t in front)


def test_bad_arguments(tmp_path):
    with pytest.raises(DiscoveryInputError, match="TPE takes one objective"):
        CandidateGenerator(SPACE, study_name="x", objectives=("sharpe", "max_drawdown"))
    with pytest.raises(DiscoveryInputError, match="unknown objective"):
        CandidateGenerator(SPACE, study_name="x", objectives=("alpha",))
    with pytest.raises(DiscoveryInputError, match="database URL"):
        CandidateGenerator(SPACE, study_name="x", storage="studies.db")
    with pytest.raises(DiscoveryError, match="cannot open the Optuna study storage"):
        CandidateGenerator(SPACE, study_name="x", storage="postgresql://nobody@127.0.0.1:1/none")
    url = f"sqlite:///{tmp_path / 's.db'}"
    CandidateGenerator(SPACE, study_name="fam", storage=url)
    with pytest.raises(DiscoveryInputError, match="searches sma_cross"):
        CandidateGenerator(default_space("pattern_follow"), study_name="fam", storage=url)


def test_optuna_storage_url():
    assert optuna_storage_url("sqlite:////x/y/alphaloop.db") == "sqlite:////x/y/alphaloop-optuna.db"
    assert optuna_storage_url("postgresql://u@h/db") == "postgresql://u@h/db"
