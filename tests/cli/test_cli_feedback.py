"""`alphaloop ml feedback submit | retrain | status` end to end, runs marked processed only once their
record is accepted (in-process, by a sink refusing some ids, and over the ML service's real gRPC server)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from tests_cli_helpers import FIXTURES, alphaloop

from alphaloop.backtest import run_backtest
from alphaloop.cli.feedback_cmd import submit_runs
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.data import load_bars
from alphaloop.discovery.feedback import FeedbackRecord
from alphaloop.discovery.retraining import FeedbackLoop, MemoryFeedbackRepository
from alphaloop.execution import BrokerConfig
from alphaloop.store import Store
from alphaloop.strategy import load_strategy

GOOG = FIXTURES / "GOOG_daily.csv"
N_RUNS = 40


def store_runs(url: str, data: Path, n: int = N_RUNS) -> list[str]:
    """Real backtests of sma_cross over windows of ``data``, stored the way `alphaloop backtest` stores them."""
    bars = load_bars(data)
    ids = []
    with Store(url) as store:
        for k in range(n):
            fast = 3 + (k * 7) % 25
            spec = StrategySpec("sma_cross", {"fast": fast, "slow": fast + 10 + (k * 11) % 40})
            start = (k * 37) % (len(bars) - 400)
            result = run_backtest(load_strategy(spec.name, spec.params), bars.iloc[start:start + 400],
                                  BrokerConfig(initial_cash=10_000), spec=spec)
            result.data_source = str(data)
            ids.append(store.save_backtest(result))
    return ids


def count(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


class RefusingSink:
    """A sink in front of a real feedback loop that refuses the ids it is told to (as a service might)."""

    def __init__(self, loop: FeedbackLoop, refuse: set[str]):
        self.loop, self.refuse, self.batches = loop, refuse, []

    def submit_feedback(self, records: list[FeedbackRecord]) -> list[str]:
        self.batches.append([r.id for r in records])
        return self.loop.submit_feedback([r for r in records if r.id not in self.refuse])


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    url = request.getfixturevalue("postgres_url")
    with Store(url) as store, store.engine.begin() as conn:  # the database lives for the session
        conn.execute(text("TRUNCATE backtest_runs, backtest_trades, equity_curves, strategy_events, strategies "
                          "RESTART IDENTITY CASCADE"))
    return url


def test_runs_are_marked_processed_only_when_accepted(db_url: str) -> None:
    ids = store_runs(db_url, GOOG, n=12)
    refuse = {ids[1], ids[5], ids[6]}
    loop = FeedbackLoop(MemoryFeedbackRepository(), registry=None)
    sink = RefusingSink(loop, refuse)
    with Store(db_url) as store:
        report = submit_runs(store, sink, batch_size=5)
        assert [len(b) for b in sink.batches] == [5, 5, 2]
        assert report.accepted == [i for i in ids if i not in refuse] and sorted(report.rejected) == sorted(refuse)
        assert report.marked_processed == 9
        assert sorted(r.run_id for r in store.recent_unprocessed()) == sorted(refuse)
        assert loop.repo.count_feedback() == 9
        # again: only the refused ones go out; the sink now takes them
        sink.refuse = set()
        again = submit_runs(store, sink, batch_size=5)
        assert sorted(again.submitted) == sorted(refuse) and again.marked_processed == 3
        assert store.recent_unprocessed() == []
        assert loop.repo.count_feedback() == 12


def test_a_failing_sink_leaves_its_batch_unprocessed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    ids = store_runs(url, GOOG, n=6)

    class Failing:
        calls = 0

        def submit_feedback(self, records):
            Failing.calls += 1
            if Failing.calls == 2:
                raise ConnectionError("service went away")
            return [r.id for r in records]

    with Store(url) as store:
        with pytest.raises(ConnectionError):
            submit_runs(store, Failing(), batch_size=4)
        assert [r.run_id for r in store.recent_unprocessed()] == ids[4:]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    data = home / "GOOG_daily.csv"
    shutil.copy(GOOG, data)
    store_runs(f"sqlite:///{home / 'alphaloop.db'}", data)
    return home


def test_submit_retrain_status_end_to_end(home: Path) -> None:
    url = f"sqlite:///{home / 'alphaloop.db'}"
    # one run whose data file disappeared: it cannot become feedback, and says why
    gone = home / "gone.csv"
    shutil.copy(GOOG, gone)
    [lost] = store_runs(url, gone, n=1)
    gone.unlink()

    out = alphaloop("ml", "feedback", "submit", "--batch-size", "7", "--json", home=home)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["runs"] == N_RUNS + 1 and doc["submitted"] == doc["accepted"] == N_RUNS
    assert doc["batches"] == 6 and doc["rejected"] == [] and doc["marked_processed"] == N_RUNS
    assert doc["training_job"] is None  # 40 new records: not yet due (50, or 24 h)
    assert doc["skipped"] == [{"run_id": lost, "reason": doc["skipped"][0]["reason"]}]
    assert "gone.csv" in doc["skipped"][0]["reason"] and "missing" in doc["skipped"][0]["reason"]
    assert f"skipped run {lost}" in out.stderr
    assert count(url, "feedback_records") == N_RUNS

    # resubmitting is harmless: only the run that cannot be fed back is left, and that is an error now
    out = alphaloop("ml", "feedback", "submit", "--json", home=home)
    assert out.returncode == 4, out.stderr
    assert "none of the 1 unprocessed runs could become feedback" in out.stderr
    assert count(url, "feedback_records") == N_RUNS

    out = alphaloop("ml", "feedback", "retrain", "--json", home=home)  # 40 < 50 new, schedule not reached
    assert out.returncode == 0, out.stderr
    skipped = json.loads(out.stdout)
    assert skipped["status"] == "skipped" and "40 new records < 50" in skipped["reason"]

    out = alphaloop("ml", "feedback", "retrain", "--force", "--json", home=home)
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert job["status"] == "succeeded" and job["n_records"] == N_RUNS and job["challenger_version"] == "1"
    ch = job["metrics"]["challenger"]
    # promotion follows the rule for a first model: beat predicting the training mean on held-out records
    assert job["promoted"] == (ch["mae"] < job["metrics"]["baseline_mae"])
    assert ch["n"] == job["metrics"]["n_holdout"] >= 5

    out = alphaloop("ml", "feedback", "status", "--json", home=home)
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout)
    assert st["feedback_records"] == N_RUNS and st["new_records"] == 0 and not st["due"]
    assert [j["id"] for j in st["jobs"]] == [job["id"]]
    assert (st["champion"] or {}).get("version") == ("1" if job["promoted"] else None)

    out = alphaloop("ml", "feedback", "status", "--job", job["id"], "--json", home=home)
    assert out.returncode == 0 and json.loads(out.stdout) == job
    human = alphaloop("ml", "feedback", "status", home=home)
    assert human.returncode == 0 and "feedback records" in human.stdout and job["id"] in human.stdout
    listed = json.loads(alphaloop("ml", "models", "list", "--json", home=home).stdout)
    assert [m["name"] for m in listed["models"]] == ["strategy-evaluator"]


def test_bad_input_exit_codes(home: Path, tmp_path: Path) -> None:
    out = alphaloop("ml", "feedback", "submit", "--batch-size", "0", home=home)
    assert out.returncode == 2 and "--batch-size" in out.stderr
    out = alphaloop("ml", "feedback", "status", "--job", "job_nope", home=home)
    assert out.returncode == 10 and "unknown training job 'job_nope'" in out.stderr
    out = alphaloop("ml", "feedback", "retrain", "--data", str(tmp_path / "nope.csv"), home=home)
    assert out.returncode == 4 and "nope.csv" in out.stderr
    out = alphaloop("ml", "feedback", "submit", "--ml-url", "http://127.0.0.1:8001", home=home)
    assert out.returncode == 3 and "gRPC" in out.stderr
    empty = tmp_path / "empty-home"
    out = alphaloop("ml", "feedback", "retrain", "--force", home=empty)
    assert out.returncode == 10 and "no feedback records" in out.stderr
    out = alphaloop("ml", "feedback", "retrain", "--force", "--json", home=empty)
    assert out.returncode == 10 and json.loads(out.stdout)["status"] == "failed"


def test_submit_over_grpc_to_the_ml_service(tmp_path: Path) -> None:
    """The CLI sends to a real ML service (gRPC on loopback) whose feedback loop is in this process."""
    from alphaloop.ml.registry import MemoryRegistryBackend, ModelRegistry
    from alphaloop.services.ml.jobs import TrainingJobs
    from alphaloop.services.ml.models import ModelHost
    from alphaloop.services.ml.server import GrpcServerWorker, HealthBoard
    from alphaloop.services.ml.service import MLCore

    home = tmp_path / "home"
    data = tmp_path / "GOOG_daily.csv"
    shutil.copy(GOOG, data)
    ids = store_runs(f"sqlite:///{home / 'alphaloop.db'}", data, n=5)
    registry = ModelRegistry(tmp_path / "models", MemoryRegistryBackend())
    loop = FeedbackLoop(MemoryFeedbackRepository(), registry)
    core = MLCore(ModelHost(registry), TrainingJobs(registry), discovery=loop)
    server = GrpcServerWorker(core, HealthBoard(None), "127.0.0.1", 0)
    server.start()
    try:
        out = alphaloop("ml", "feedback", "submit", "--ml-url", f"127.0.0.1:{server.port}", "--json", home=home)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["accepted"] == 5
        assert sorted(r.id for r in loop.repo.feedback()) == sorted(ids)
    finally:
        server.stop()
    # the service is gone: a clear error, and nothing new is marked
    store_runs(f"sqlite:///{home / 'alphaloop.db'}", data, n=1)
    out = alphaloop("ml", "feedback", "submit", "--ml-url", f"127.0.0.1:{server.port}", home=home)
    assert out.returncode == 10 and "ML service at 127.0.0.1" in out.stderr
    with Store(f"sqlite:///{home / 'alphaloop.db'}") as store:
        assert len(store.recent_unprocessed()) == 1
