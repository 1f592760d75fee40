"""Feedback records and training jobs in SQLite and PostgreSQL: idempotent inserts, counts, job rows,
and a feedback loop whose champion survives a reopened database."""

from __future__ import annotations

import datetime as dt
import math
import threading
from typing import Any

import numpy as np
import pytest

from alphaloop.core.errors import StoreError
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.discovery.feedback import FeedbackRecord
from alphaloop.discovery.regime import REGIME_FEATURES
from alphaloop.discovery.retraining import FeedbackLoop, RetrainPolicy, TrainingJob
from alphaloop.store import SqlModelRepository, Store
from alphaloop.store.feedback_repository import SqlFeedbackRepository


def records(n: int, seed: int = 0) -> list[FeedbackRecord]:
    """Scores a known function of ``fast`` and the trend (learnable), big ns times (BIGINT)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        fast, trend = int(rng.integers(2, 40)), float(rng.uniform(0, 1))
        regime = {f: float(rng.uniform(0, 0.1)) for f in REGIME_FEATURES} | {"trend_strength": trend}
        out.append(FeedbackRecord(
            id=f"run_{seed}_{k:04d}", spec=StrategySpec("sma_cross", {"fast": fast, "slow": fast + 20, "tag": "x"}),
            instrument="EURUSD", start_ns=1_700_000_000_000_000_000 + k, end_ns=1_710_000_000_000_000_000 + k,
            n_bars=500 + k, regime=regime, metrics={"sharpe": float(rng.normal()), "n_trades": 12.0},
            backtest_score=float(np.clip(trend * math.exp(-(((fast - 15) / 10) ** 2)), 0, 1))))
    return out


@pytest.fixture
def repo(store: Store) -> SqlFeedbackRepository:
    return SqlFeedbackRepository(store)


def test_resubmitting_stores_nothing_twice(repo: SqlFeedbackRepository, store: Store, count_rows) -> None:
    batch = records(30)
    assert repo.add_feedback(batch) == [r.id for r in batch]
    assert count_rows(store, "feedback_records") == 30
    assert repo.add_feedback(batch) == [r.id for r in batch]  # already held: accepted, not stored again
    assert repo.add_feedback(batch[:5] + records(3, seed=1) + batch[:2]) == (
        [r.id for r in batch[:5]] + [r.id for r in records(3, seed=1)] + [r.id for r in batch[:2]])
    assert count_rows(store, "feedback_records") == 33
    assert repo.count_feedback() == 33 and repo.count_new() == 33


def test_records_round_trip(repo: SqlFeedbackRepository) -> None:
    batch = records(10)
    repo.add_feedback(batch)
    back = repo.feedback()
    assert sorted(back, key=lambda r: r.id) == sorted(batch, key=lambda r: r.id)
    assert repo.has_feedback(["run_0_0001", "nope"]) == {"run_0_0001"}


def test_the_first_copy_of_an_id_is_kept(repo: SqlFeedbackRepository) -> None:
    original = records(1)[0]
    changed = FeedbackRecord(**{**original.__dict__, "backtest_score": 0.99})
    repo.add_feedback([original])
    repo.add_feedback([changed])
    assert repo.feedback() == [original]


def test_new_and_used(repo: SqlFeedbackRepository) -> None:
    batch = records(20)
    repo.add_feedback(batch)
    assert repo.mark_used([r.id for r in batch[:8]], "job_a") == 8
    assert repo.mark_used([r.id for r in batch[:10]], "job_b") == 2  # the first job keeps its records
    assert repo.count_new() == 10
    assert {r.id for r in repo.feedback(new_only=True)} == {r.id for r in batch[10:]}


def test_a_bad_batch_writes_nothing(repo: SqlFeedbackRepository, store: Store, count_rows) -> None:
    with pytest.raises(StoreError, match="item 1 is a dict"):
        repo.add_feedback([records(1)[0], records(2)[1].to_dict()])  # type: ignore[list-item]
    assert count_rows(store, "feedback_records") == 0


def test_concurrent_producers_store_each_id_once(store_url: str, count_rows) -> None:
    batch = records(60)
    stores = [Store(store_url) for _ in range(4)]
    errors: list[BaseException] = []

    def send(s: Store) -> None:
        try:
            SqlFeedbackRepository(s).add_feedback(batch)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=send, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert count_rows(stores[0], "feedback_records") == 60
    finally:
        for s in stores:
            s.close()


def test_jobs(repo: SqlFeedbackRepository) -> None:
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    a = TrainingJob("job_a", "running", t0, None, 10)
    repo.save_job(a)
    assert repo.get_job("job_a") == a and repo.last_trained_at() is None
    a.status, a.finished_at, a.promoted, a.challenger_version = "succeeded", t0 + dt.timedelta(minutes=2), True, "1"
    a.metrics = {"challenger": {"mae": 0.1, "spearman": math.nan}, "n_holdout": 4}
    repo.save_job(a)
    b = TrainingJob("job_b", "failed", t0 + dt.timedelta(hours=1), t0 + dt.timedelta(hours=2), 12, reason="boom")
    repo.save_job(b)
    got = repo.get_job("job_a")
    assert got.status == "succeeded" and got.promoted and got.finished_at == a.finished_at
    assert math.isnan(got.metrics["challenger"]["spearman"]) and got.metrics["challenger"]["mae"] == 0.1
    assert [j.id for j in repo.list_jobs()] == ["job_b", "job_a"]
    assert repo.last_trained_at() == a.finished_at  # failed jobs do not count
    assert repo.get_job("nope") is None
    with pytest.raises(StoreError, match="status 'skipped'"):
        repo.save_job(TrainingJob("job_c", "skipped", t0, t0, 0))


def test_loop_on_the_database_keeps_its_champion(store_url: str, tmp_path: Any) -> None:
    with Store(store_url) as store:
        registry = SqlModelRepository(store).registry(tmp_path / "models")
        loop = FeedbackLoop(SqlFeedbackRepository(store), registry, RetrainPolicy(min_new_records=150))
        loop.submit_feedback(records(150, seed=3))
        job = loop.retrain()
        assert job.status == "succeeded" and job.promoted, job.reason
        regime = records(1, seed=4)[0].regime
        specs = [StrategySpec("sma_cross", {"fast": f, "slow": f + 20, "tag": "x"}) for f in range(2, 40)]
        before = loop.evaluator().predict(specs, regime)
    with Store(store_url) as store:  # another process, later
        registry = SqlModelRepository(store).registry(tmp_path / "models")
        loop = FeedbackLoop(SqlFeedbackRepository(store), registry)
        assert loop.job(job.id).promoted and loop.repo.count_new() == 0
        assert np.array_equal(loop.evaluator().predict(specs, regime), before)
