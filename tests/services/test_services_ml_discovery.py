"""The ML service's discovery side over real gRPC on loopback: the loop ``build_discovery`` attaches
(SQLite project database, real LightGBM/ONNX evaluation model) answers SubmitBacktestFeedback,
RetrainEvaluator, GetFeedbackStatus, EvaluateStrategy and GenerateStrategy, and :class:`RemoteML`
gives the discovery pipeline the same answers as the in-process side."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest
from ml_helpers import ThreadServer, settings_for, wait_for

from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.discovery.evaluation_model import StrategyEvaluationModel
from alphaloop.discovery.feedback import FeedbackRecord
from alphaloop.discovery.pipeline import InProcessML
from alphaloop.discovery.regime import REGIME_FEATURES
from alphaloop.discovery.retraining import FeedbackLoop, RetrainPolicy
from alphaloop.discovery.search_space import default_space
from alphaloop.services.ml.client import MLGrpcClient
from alphaloop.services.ml.discovery_backend import build_discovery
from alphaloop.services.ml.errors import RemoteInvalidArgument, RemoteNotFound, RemoteNotReady
from alphaloop.services.ml.http import build_app
from alphaloop.services.ml.remote_discovery import RemoteML
from alphaloop.services.ml.service import NO_EVALUATION_MODEL
from alphaloop.store import SqlModelRepository, Store
from alphaloop.store.feedback_repository import SqlFeedbackRepository

DAY_NS = 86_400 * 10**9
POLICY = RetrainPolicy(min_new_records=1000, every_hours=None)  # trains only when forced, in these tests


def planted_score(fast: int, trend: float) -> float:
    """The planted relationship: sma_cross pays in trends when ``fast`` is near 12."""
    return float(min(max(0.8 * trend * math.exp(-(((fast - 12) / 8) ** 2)), 0.0), 1.0))


def regime(trend: float) -> dict[str, float]:
    r = dict.fromkeys(REGIME_FEATURES, 0.0)
    r.update(trend_strength=trend, volatility=0.01, range_rel=0.02, n_bars=500.0)
    return r


def planted(n: int, seed: int = 0) -> list[FeedbackRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        fast, slow, trend = int(rng.integers(2, 31)), int(rng.integers(31, 201)), float(rng.uniform(0, 1))
        out.append(FeedbackRecord(id=f"p{seed}-{k}", spec=StrategySpec("sma_cross", {"fast": fast, "slow": slow}),
                                  instrument="SYNTH", start_ns=k * DAY_NS, end_ns=(k + 500) * DAY_NS, n_bars=500,
                                  regime=regime(trend), metrics={"sharpe": float(rng.normal())},
                                  backtest_score=planted_score(fast, trend)))
    return out


@pytest.fixture
def service(tmp_path):
    """The ML service with the discovery loop build_discovery makes (no scheduler: trains when asked)."""
    settings = settings_for(tmp_path / "ml")
    backend = build_discovery(settings, policy=POLICY, retrain_interval_s=None)
    with ThreadServer(build_app(settings, grpc_port=0, discovery=backend)) as srv, \
            MLGrpcClient(srv.grpc_target, timeout_s=30.0) as client:
        yield srv, client, backend


def test_not_ready_before_training(service):
    srv, client, _ = service
    with pytest.raises(RemoteNotReady) as e:
        client.evaluate([StrategySpec("sma_cross", {"fast": 5, "slow": 50})], regime(0.5))
    assert NO_EVALUATION_MODEL in str(e.value)
    with pytest.raises(RemoteNotReady, match="not ready: no strategy-evaluation model"):
        client.generate("sma_cross", 10, 3, 0, regime(0.5))
    with RemoteML(srv.grpc_target) as ml:
        assert ml.evaluate([StrategySpec("sma_cross", {"fast": 5, "slow": 50})], regime(0.5)) is None
        job = ml.retrain(force=False, seed=0)  # nothing to train on, not forced: skipped, with why
        assert job.status == "skipped" and "0 new records < 1000" in job.reason
        status = ml.check_reachable()
    assert status["feedback_records"] == 0 and status["champion"] is None and status["jobs"] == []


def test_submit_feedback_stores_each_record_once(service):
    _, client, backend = service
    records = planted(30)
    assert client.submit_feedback(records) == [r.id for r in records]
    assert client.submit_feedback(records[:10]) == [r.id for r in records[:10]]  # resubmitting is harmless
    # what the database holds, read through the service's own repository: each record once, intact
    held = sorted((r.to_dict() for r in backend.loop.repo.feedback()), key=lambda d: d["id"])
    assert held == sorted((r.to_dict() for r in records), key=lambda d: d["id"])
    bad = {**records[0].to_dict(), "id": "bad", "backtest_score": 1.5}
    with pytest.raises(RemoteInvalidArgument, match=r"records\[1\].*backtest_score"):
        client.submit_feedback([records[1].to_dict(), bad])
    status = client.feedback_status()
    assert status["feedback_records"] == 30 and status["new_records"] == 30  # the refused batch left nothing
    assert status["policy"] == {"min_new_records": 1000, "every_hours": None} and not status["due"]


def test_retrain_promotes_a_champion_and_evaluate_equals_the_in_process_model(service, tmp_path):
    srv, client, backend = service
    records = planted(240)
    client.submit_feedback(records)
    skipped = client.retrain_evaluator(force=False, seed=0)
    assert skipped.status == "skipped" and "240 new records < 1000" in skipped.reason
    job = client.retrain_evaluator(force=True, seed=0)
    assert job.status == "succeeded" and job.promoted and job.n_records == 240
    assert job.metrics["challenger"]["mae"] < job.metrics["baseline_mae"]  # it learnt the planted relationship
    status = client.feedback_status()
    assert status["champion"]["version"] == job.challenger_version and status["new_records"] == 0
    assert [j.id for j in status["jobs"]] == [job.id]
    one = client.feedback_status(job.id)["jobs"][0]
    assert (one.id, one.status, one.promoted, one.challenger_version) == (job.id, "succeeded", True,
                                                                          job.challenger_version)
    with pytest.raises(RemoteNotFound):
        client.feedback_status("job-nope")

    # the same records and seed trained in this process (as `alphaloop discover` without --ml-url) give
    # the very same numbers
    store = Store(f"sqlite:///{tmp_path / 'local.db'}")
    local = FeedbackLoop(SqlFeedbackRepository(store), SqlModelRepository(store).registry(tmp_path / "models"),
                         POLICY)
    local.submit_feedback(records)
    assert local.retrain(force=True, seed=0).promoted
    specs = [StrategySpec("sma_cross", {"fast": f, "slow": 60}) for f in (3, 8, 12, 16, 28)]
    for trend in (0.1, 0.9):
        remote = client.evaluate(specs, regime(trend))
        assert remote == InProcessML(local).evaluate(specs, regime(trend)).tolist()
        # and the champion in the service's registry predicts them too
        champion = StrategyEvaluationModel.load(backend.loop.registry, version=int(job.challenger_version))
        assert remote == champion.predict(specs, regime(trend)).tolist()
    good, far = client.evaluate([specs[2], specs[4]], regime(0.9))
    assert good > far  # fast near 12 in a trend beats fast 28, as planted
    with RemoteML(srv.grpc_target) as ml:  # the pipeline's view: NaN for a family the model never saw
        out = ml.evaluate([specs[0], StrategySpec("pattern_follow", {"detector": "ema_cross"})], regime(0.5))
        assert out[0] == InProcessML(local).evaluate(specs[:1], regime(0.5))[0] and math.isnan(out[1])
    store.close()


def test_generate_keeps_the_best_scored_specs_inside_the_search_space(service):
    _, client, backend = service
    client.submit_feedback(planted(200, seed=1))
    assert client.retrain_evaluator(force=True, seed=0).promoted
    r = regime(0.8)
    kept = client.generate("sma_cross", 40, 5, 3, r)
    assert len(kept) == 5
    space = default_space("sma_cross")
    for spec, _ in kept:
        assert spec.name == "sma_cross" and all(d.contains(spec.params[d.name]) for d in space.dims)
    scores = [s for _, s in kept]
    assert scores == sorted(scores, reverse=True)
    # the scores are the champion's, and the kept ones are the best of all proposals
    champion = backend.loop.evaluator()
    assert scores == champion.predict([s for s, _ in kept], r).tolist()
    every = client.generate("sma_cross", 40, 40, 3, r)
    assert [(s.key, v) for s, v in every[:5]] == [(s.key, v) for s, v in kept]
    assert min(scores) >= max(v for _, v in every[5:])
    assert client.generate("sma_cross", 40, 5, 3, r) == kept  # same seed, same candidates
    assert [s.key for s, _ in client.generate("sma_cross", 40, 5, 4, r)] != [s.key for s, _ in kept]
    with pytest.raises(RemoteInvalidArgument, match="keep"):
        client.generate("sma_cross", 3, 5, 0, r)
    with pytest.raises(RemoteInvalidArgument, match="no search space for strategy family 'nope'"):
        client.generate("nope", 3, 1, 0, r)
    with pytest.raises(RemoteNotReady, match="not 'ml_multifactor'"):
        client.generate("ml_multifactor", 3, 1, 0, r)


def test_a_service_without_discovery_is_refused_clearly(tmp_path):
    settings = settings_for(tmp_path / "bare")
    with ThreadServer(build_app(settings, grpc_port=0)) as srv, RemoteML(srv.grpc_target) as ml:
        with pytest.raises(Exception, match="no discovery loop attached") as e:
            ml.check_reachable()
        assert e.value.exit_code == 10
        with pytest.raises(RemoteNotReady):
            ml.client.retrain_evaluator(force=True)
    with RemoteML("127.0.0.1:1", timeout_s=0.2, retries=0) as ml, \
            pytest.raises(Exception, match="cannot be reached") as e:
        ml.check_reachable(timeout=0.5)
    assert e.value.exit_code == 10 and grpc.StatusCode.UNAVAILABLE.name in str(e.value)


def test_the_scheduler_retrains_once_enough_feedback_arrived(tmp_path):
    """build_discovery's scheduler runs with the service: 60 new records >= 50 make it train by itself."""
    settings = settings_for(tmp_path / "sched")
    backend = build_discovery(settings, policy=RetrainPolicy(min_new_records=50, every_hours=None),
                              retrain_interval_s=0.1)
    with ThreadServer(build_app(settings, grpc_port=0, discovery=backend)) as srv, \
            MLGrpcClient(srv.grpc_target, timeout_s=30.0) as client:
        client.submit_feedback(planted(40, seed=2))
        with pytest.raises(AssertionError, match="timed out"):  # 40 < 50: nothing yet
            wait_for(lambda: client.feedback_status()["jobs"], timeout=0.5)
        client.submit_feedback(planted(60, seed=3))
        wait_for(lambda: client.feedback_status()["champion"] is not None, timeout=60, what="a first champion")
        job = client.feedback_status()["jobs"][0]
        assert job.status == "succeeded" and job.promoted and "100 new records >= 50" in job.reason
    assert backend.loop._thread is None  # the scheduler stopped with the service
