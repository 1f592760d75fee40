"""Faults against real processes: the strategy engine killed with SIGKILL mid-replay and restarted,
and the Redis server itself restarted mid-run. In both, the run must end with exactly the decisions,
orders and fills of the embedded run of the same file: no signal without its one decision, no order
lost or duplicated, no acknowledged work lost."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time

import pytest
import redis
from pipeline_helpers import (
    ML_PARAMS,
    PIPELINE,
    Pipeline,
    delete_streams,
    embedded_run,
    free_port,
    get,
    new_run_id,
    redis_up,
    run_args,
    run_finished,
    service_env,
    stored_run,
    wait_for,
)

pytestmark = pytest.mark.skipif(not redis_up(), reason="no Redis server at 127.0.0.1:6379")
def _stream_ids(url: str, key: str, kind: str) -> list[str]:
    r = redis.Redis.from_url(url)
    try:
        return [fields[b"id"].decode() for _, fields in r.xrange(key) if fields[b"kind"] == kind.encode()]
    finally:
        r.close()


def _decided_in_db(database_url: str, run_id: str) -> int:
    from alphaloop.store import LiveRepository, Store

    with Store(database_url, migrate=False) as store:
        return LiveRepository(store).run(run_id)["n_decisions"]


def _assert_same_as_embedded(database_url: str, run_id: str, redis_url: str, bars: int | None = None) -> dict:
    embedded = embedded_run(database_url, f"{run_id}-embedded", strategy="ml_multifactor", params=ML_PARAMS,
                            bars=bars)
    served, reference = stored_run(database_url, run_id), stored_run(database_url, f"{run_id}-embedded")
    assert embedded.decisions == embedded.signals > 40 and embedded.orders > 15
    signal_ids = _stream_ids(redis_url, f"alphaloop:{run_id}:signals", "signal")
    assert len(set(signal_ids)) == embedded.signals  # every signal the pattern engine published ...
    assert len(served["decisions"]) == embedded.signals  # ... has exactly one decision
    assert served["decisions"] == reference["decisions"]
    assert served["orders"] == reference["orders"]  # none lost, none duplicated
    assert served["fills"] == reference["fills"]
    assert len(set(served["order_ids"])) == len(served["order_ids"])
    return {"signal_messages": len(signal_ids), "embedded": embedded}


def test_strategy_engine_killed_mid_replay_restarts_without_losing_or_duplicating(tmp_path, postgres_url):
    run_id = new_run_id("sigkill")
    args = run_args(run_id, strategy="ml_multifactor", params=json.dumps(ML_PARAMS), speed=300)
    pipe = Pipeline(tmp_path, service_env(tmp_path / "home", postgres_url), args)
    try:
        pipe.start_all()
        wait_for("40 decisions in the database", lambda: _decided_in_db(postgres_url, run_id) >= 40, timeout=60)
        assert not run_finished(pipe.url("strategy"))
        pipe.procs["strategy"].proc.send_signal(signal.SIGKILL)
        assert pipe.procs["strategy"].proc.wait(10) == -signal.SIGKILL
        at_kill = _decided_in_db(postgres_url, run_id)
        time.sleep(1.0)  # the replay goes on without the engine
        pipe.start("strategy")
        stats = pipe.finished()
        assert stats["ended"] == "end_of_data" and stats["rebuilds"] == 1
        out = _assert_same_as_embedded(postgres_url, run_id, "redis://127.0.0.1:6379/0")
        # the engine's HTTP API reads the same rows: latest decisions, and the chain behind an order
        latest = get(f"{pipe.url('strategy')}/decisions", params={"limit": 5}).json()
        stored = stored_run(postgres_url, run_id)
        assert len(latest) == 5 and latest[-1]["id"] == max(stored["decisions"], key=lambda d: (d[2], d[0]))[0]
        order_id = stored["order_ids"][0]
        chain = get(f"{pipe.url('strategy')}/explain/{order_id}").json()
        assert chain["order"]["id"] == order_id and chain["run"]["id"] == run_id
        assert chain["decision"]["order_id"] == order_id and chain["decision"]["factors"]
        assert get(f"{pipe.url('strategy')}/explain/{run_id}:99999").status_code == 404
        assert 40 <= at_kill < out["embedded"].decisions  # killed in the middle of the run
        # the restarted engine replayed its streams: it republished orders execution had already taken
        orders_on_stream = _stream_ids("redis://127.0.0.1:6379/0", f"alphaloop:{run_id}:orders", "order")
        assert len(orders_on_stream) > len(set(orders_on_stream)) == out["embedded"].orders
        codes = pipe.stop_all()
        assert set(codes.values()) == {0}, codes
    finally:
        pipe.kill_all()
        delete_streams(run_id)


@pytest.mark.parametrize("victim", ["execution", "patterns"])
def test_execution_or_pattern_engine_killed_mid_run_restarts_and_the_run_ends_the_same(tmp_path, postgres_url,
                                                                                       victim):
    run_id = new_run_id(f"sigkill-{victim}")
    args = run_args(run_id, strategy="ml_multifactor", params=json.dumps(ML_PARAMS), speed=300)
    pipe = Pipeline(tmp_path, service_env(tmp_path / "home", postgres_url), args)
    try:
        pipe.start_all()
        wait_for("30 decisions in the database", lambda: _decided_in_db(postgres_url, run_id) >= 30, timeout=60)
        assert not run_finished(pipe.url("strategy"))
        pipe.procs[victim].proc.send_signal(signal.SIGKILL)
        assert pipe.procs[victim].proc.wait(10) == -signal.SIGKILL
        time.sleep(0.5)
        pipe.start(victim)  # rebuilds its state from its input stream, republishing the same ids
        stats = pipe.finished()
        assert stats["ended"] == "end_of_data" and stats["rebuilds"] == 1  # the engine itself went on
        _assert_same_as_embedded(postgres_url, run_id, "redis://127.0.0.1:6379/0")
        codes = pipe.stop_all()
        assert set(codes.values()) == {0}, codes
    finally:
        pipe.kill_all()
        delete_streams(run_id)


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own (AOF, fsync on every write), restartable on its dir and port."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    port, data = free_port(), tmp_path / "redis"
    data.mkdir()
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--appendonly", "yes",
            "--appendfsync", "always", "--save", "", "--daemonize", "no"]
    url = f"redis://127.0.0.1:{port}/0"
    procs: list[subprocess.Popen] = []

    def start() -> None:
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for("the private Redis", lambda: redis_up(url), timeout=20)

    def restart() -> None:
        r = redis.Redis.from_url(url)
        with contextlib.suppress(redis.ConnectionError):  # the server closes the connection as it goes
            r.shutdown()  # AOF fsynced, then exit
        procs[-1].wait(20)
        time.sleep(0.5)  # services see it gone and back off
        start()

    start()
    yield url, restart
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(20)


def test_redis_restart_mid_run_loses_no_acknowledged_work(tmp_path, postgres_url, private_redis):
    url, restart = private_redis
    run_id = new_run_id("redis-restart")
    # every Redis write is fsynced here: a shorter run (700 steps) keeps the test quick
    args = run_args(run_id, strategy="ml_multifactor", params=json.dumps(ML_PARAMS), speed=200, bars=700)
    pipe = Pipeline(tmp_path, service_env(tmp_path / "home", postgres_url, redis_url=url), args)
    try:
        pipe.start_all()
        wait_for("20 decisions in the database", lambda: _decided_in_db(postgres_url, run_id) >= 20, timeout=60)
        assert not run_finished(pipe.url("strategy"))  # Redis goes away in the middle of the run
        restart()
        stats = pipe.finished()
        assert stats["ended"] == "max_bars" and stats["rebuilds"] >= 2  # it lost Redis, rebuilt, went on
        _assert_same_as_embedded(postgres_url, run_id, url, bars=700)
        for name in PIPELINE:  # every service reconnected by itself and is ready again
            assert get(f"{pipe.url(name)}/health").status_code == 200, name
        codes = pipe.stop_all()
        assert set(codes.values()) == {0}, codes
    finally:
        pipe.kill_all()
