"""Retraining: when it is due (count and schedule, with an injected clock), champion/challenger
promotion on the same held-out records, job records, the scheduler thread and the price models."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path

import numpy as np
import pytest
from discovery_feedback_helpers import planted_records

from alphaloop.data import load_bars
from alphaloop.discovery.errors import DiscoveryInputError
from alphaloop.discovery.evaluation_model import StrategyEvaluationModel, split_holdout
from alphaloop.discovery.retraining import (
    FeedbackLoop,
    MemoryFeedbackRepository,
    RetrainPolicy,
    due,
)
from alphaloop.ml.registry import MemoryRegistryBackend, ModelRegistry

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
GOOG = Path(__file__).resolve().parents[1] / "fixtures" / "market" / "GOOG_daily.csv"


class Clock:
    def __init__(self, now: dt.datetime = T0):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def wait_for(predicate, timeout: float, step: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (the scheduler runs in a thread)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def shuffled_fit(records, *, seed: int = 0, holdout: float = 0.2) -> StrategyEvaluationModel:
    """A learner fed garbage: the scores are shuffled among the records before fitting."""
    scores = np.random.default_rng(seed + 1).permutation([r.backtest_score for r in records])
    garbage = [dataclasses.replace(r, backtest_score=float(s)) for r, s in zip(records, scores, strict=True)]
    return StrategyEvaluationModel.fit(garbage, seed=seed, holdout=holdout)


def make_loop(tmp_path: Path, policy: RetrainPolicy, clock: Clock | None = None, **kw) -> FeedbackLoop:
    registry = ModelRegistry(tmp_path / "models", MemoryRegistryBackend())
    return FeedbackLoop(MemoryFeedbackRepository(), registry, policy, clock=clock or Clock(), **kw)


def test_due_by_count_and_by_schedule() -> None:
    p = RetrainPolicy(min_new_records=50, every_hours=24.0)
    assert due(p, 50, T0, T0)
    assert not due(p, 49, T0, T0 + dt.timedelta(hours=23, minutes=59))
    assert due(p, 1, T0, T0 + dt.timedelta(hours=24))
    assert not due(p, 0, T0, T0 + dt.timedelta(hours=100))  # nothing new to learn from
    assert due(p, 1, None, T0)  # never trained: the schedule is overdue
    assert not due(RetrainPolicy(10, None), 9, T0, T0 + dt.timedelta(days=365))
    naive = dt.datetime(2026, 1, 2)  # naive times are taken as UTC
    assert due(p, 1, T0, naive)
    for bad in ({"min_new_records": 0}, {"min_new_records": 2.5}, {"every_hours": 0}, {"every_hours": -1.0}):
        with pytest.raises(DiscoveryInputError):
            RetrainPolicy(**bad)


def test_retrains_at_n_records(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, RetrainPolicy(min_new_records=200, every_hours=None))
    records = planted_records(300, seed=1)
    loop.submit_feedback(records[:199])
    skipped = loop.retrain()
    assert skipped.status == "skipped" and "199 new records < 200" in skipped.reason
    assert loop.jobs() == [] and loop.evaluator() is None
    loop.submit_feedback(records[199:200])
    job = loop.retrain()
    assert job.status == "succeeded", job.reason
    assert job.n_records == 200 and job.promoted and job.champion_version is None
    assert job.challenger_version == "1"
    assert "200 new records >= 200" in job.reason and "first champion" in job.reason
    assert job.metrics["challenger"]["mae"] < job.metrics["baseline_mae"]
    assert job.metrics["price_models"]["skipped"].startswith("no price data")
    assert loop.repo.count_new() == 0
    assert loop.retrain().status == "skipped"  # the records were used
    assert loop.jobs() == [loop.job(job.id)]
    assert loop.evaluator().version == "1"
    with pytest.raises(DiscoveryInputError, match="unknown training job 'job_nope'"):
        loop.job("job_nope")


def test_retrains_on_the_schedule(tmp_path: Path) -> None:
    clock = Clock()
    loop = make_loop(tmp_path, RetrainPolicy(min_new_records=10_000, every_hours=6.0), clock)
    loop.submit_feedback(planted_records(120, seed=2))
    clock.now = T0 + dt.timedelta(hours=5, minutes=59)
    assert loop.retrain().status == "skipped"
    clock.now = T0 + dt.timedelta(hours=6)
    first = loop.retrain()
    assert first.status == "succeeded" and first.finished_at == clock.now
    assert "6.00 h since the last training >= 6 h" in first.reason
    loop.submit_feedback(planted_records(30, seed=3))
    clock.now = first.finished_at + dt.timedelta(hours=3)
    assert loop.retrain().status == "skipped"
    clock.now = first.finished_at + dt.timedelta(hours=6)
    assert loop.retrain().status == "succeeded"
    assert len(loop.jobs()) == 2


def test_champion_challenger(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, RetrainPolicy(min_new_records=1, every_hours=None))
    records = planted_records(600, seed=4)
    loop.submit_feedback(records[:80])
    weak = loop.retrain()
    assert weak.promoted and loop.evaluator().version == "1"

    loop.submit_feedback(records[80:])
    better = loop.retrain()
    assert better.status == "succeeded" and better.promoted, better.reason
    assert better.champion_version == "1" and better.challenger_version == "2"
    # both were judged on the same held-out records: recompute each model's MAE on them here
    _, held = split_holdout(records)
    assert better.metrics["n_holdout"] == len(held) == better.metrics["champion"]["n"]
    v1 = StrategyEvaluationModel.load(loop.registry, version=1)
    v2 = StrategyEvaluationModel.load(loop.registry, version=2)
    y = np.array([r.backtest_score for r in held])
    assert better.metrics["champion"]["mae"] == pytest.approx(np.mean(np.abs(v1.predict_records(held) - y)))
    assert better.metrics["challenger"]["mae"] == pytest.approx(np.mean(np.abs(v2.predict_records(held) - y)))
    assert loop.registry.backend.aliases("strategy-evaluator") == {"champion": 2, "challenger": 2}

    loop._fit = shuffled_fit  # the next challenger learns from garbage
    loop.submit_feedback(planted_records(20, seed=5))
    garbage = loop.retrain()
    assert garbage.status == "succeeded" and not garbage.promoted, garbage.reason
    assert "not promoted" in garbage.reason
    assert garbage.metrics["challenger"]["mae"] > garbage.metrics["champion"]["mae"]
    assert garbage.metrics["challenger"]["spearman"] < 0.5 < garbage.metrics["champion"]["spearman"]
    assert loop.registry.backend.aliases("strategy-evaluator") == {"champion": 2, "challenger": 3}
    assert loop.evaluator().version == "2"


def test_garbage_first_model_is_not_champion(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, RetrainPolicy(min_new_records=1), fit=shuffled_fit)
    loop.submit_feedback(planted_records(300, seed=6))
    job = loop.retrain()
    assert job.status == "succeeded" and not job.promoted
    assert "does not beat the baseline" in job.reason
    assert loop.evaluator() is None


def test_a_failed_job_is_recorded_and_keeps_records_new(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, RetrainPolicy(min_new_records=1000))
    loop.submit_feedback(planted_records(12, seed=7))
    job = loop.retrain(force=True)
    assert job.status == "failed" and "12 feedback records give" in job.reason
    assert loop.job(job.id).status == "failed"
    assert loop.repo.count_new() == 12
    assert loop.evaluator() is None


def test_scheduler_thread_trains_when_due(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, RetrainPolicy(min_new_records=100, every_hours=None))
    loop.start_scheduler(0.05)
    try:
        with pytest.raises(Exception, match="already running"):
            loop.start_scheduler(0.05)
        loop.submit_feedback(planted_records(150, seed=8))
        assert wait_for(lambda: any(j.status == "succeeded" for j in loop.jobs()), timeout=60)
    finally:
        loop.stop_scheduler()
    assert loop.evaluator() is not None
    assert len(loop.jobs()) == 1  # nothing new afterwards: no more jobs


def test_price_models_trained_when_data_is_given(tmp_path: Path) -> None:
    bars = load_bars(GOOG)
    loop = make_loop(tmp_path, RetrainPolicy(min_new_records=1), price_data={"GOOG": bars}, price_model="linear")
    loop.submit_feedback(planted_records(100, seed=9))
    job = loop.retrain()
    assert job.status == "succeeded", job.reason
    info = job.metrics["price_models"]["GOOG"]
    assert info["model"] == "GOOG-linear-reg-h5" and info["version"] == 1 and info["promoted"]
    assert loop.registry.backend.aliases("GOOG-linear-reg-h5") == {"champion": 1, "challenger": 1}
    again = loop.retrain(force=True)
    assert again.metrics["price_models"]["GOOG"]["version"] == 2
    assert not again.metrics["price_models"]["GOOG"]["promoted"]  # the champion stays until a person moves it


def test_a_challenger_that_learnt_a_new_family_competes_on_the_same_records(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, RetrainPolicy(min_new_records=1))
    records = planted_records(600, seed=10)
    sma = [r for r in records if r.spec.name == "sma_cross"]
    loop.submit_feedback(sma)
    assert loop.retrain().promoted and loop.evaluator().families == ("sma_cross",)
    loop.submit_feedback(records)  # now the "band" family too
    job = loop.retrain()
    assert job.status == "succeeded" and job.promoted, job.reason
    _, held = split_holdout(records)
    n_band = sum(r.spec.name == "band" for r in held)
    # the old champion cannot score band strategies: it is charged the training mean for them
    assert job.metrics["champion"]["n_uncovered"] == n_band > 0
    assert job.metrics["challenger"]["n_uncovered"] == 0
    assert job.metrics["champion"]["n"] == job.metrics["challenger"]["n"] == len(held)
    assert loop.evaluator().families == ("band", "sma_cross")
