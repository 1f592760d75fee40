"""`alphaloop discover --ml-url grpc://...` against the ML service run as its own process
(``python -m alphaloop.services.ml``): the same report as the in-process run with the same seed and
data, and the feedback, jobs and evaluation model live in the service's database, not the CLI's."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from tests_cli_helpers import FIXTURES, alphaloop

from alphaloop.services.ml.client import MLGrpcClient

GOOG = str(FIXTURES / "GOOG_daily.csv")
BTC = str(FIXTURES / "BTC-USD_daily.csv")
RUN = ("discover", "--data", GOOG, "--data", BTC, "--trials", "24", "--batch", "4", "--seed", "5",
       "--executor", "serial", "--json")


def comparable(report: dict) -> dict:
    """What DiscoveryReport.comparable() keeps: no timings, no executor name, no job reasons (a skipped
    job's reason quotes the hours since the last training)."""
    d = copy.deepcopy(report)
    for k in ("seconds", "candidates_per_minute", "executor"):
        d.pop(k)
    d["steps"] = [{"name": s["name"], "counts": s["counts"]} for s in d["steps"]]
    for j in [j for s in d["steps"] for j in s["counts"].get("jobs", [])] + d["model"]["jobs"]:
        j.pop("reason", None)
    return d


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def ml_service(tmp_path):
    """The ML service with its discovery loop, in its own home; no scheduler, so nothing retrains
    behind the run's back (the in-process run has none either)."""
    home = tmp_path / "ml-service"
    home.mkdir()
    http_port, grpc_port = _free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHALOOP_")}
    env["ALPHALOOP_HOME"] = str(home)
    log = home / "service.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "alphaloop.services.ml", "--http-port", str(http_port),
                                 "--grpc-port", str(grpc_port), "--retrain-interval", "0"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    client = MLGrpcClient(f"127.0.0.1:{grpc_port}", timeout_s=5.0, retries=0)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.feedback_status()  # up, with the discovery loop attached
                break
            except Exception as e:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"ML service did not come up ({e}); log:\n{log.read_text()[-3000:]}") from e
                time.sleep(0.1)
        yield f"grpc://127.0.0.1:{grpc_port}", client, home
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_remote_discover_gives_the_in_process_report(tmp_path, ml_service):
    url, client, _ = ml_service
    local = alphaloop(*RUN, home=tmp_path / "local")
    assert local.returncode == 0, local.stderr
    remote = alphaloop(*RUN, "--ml-url", url, home=tmp_path / "remote")
    assert remote.returncode == 0, remote.stderr
    expected, got = json.loads(local.stdout), json.loads(remote.stdout)
    assert got["model"]["available"] and got["candidates_tried"] == 24
    assert comparable(got) == comparable(expected)
    gen = next(s for s in got["steps"] if s["name"] == "generate")["counts"]
    assert (gen["candidates"], gen["proposed"]) == (4, 36)  # 20 bootstrap + 4 kept of 16 the service screened

    # the ML side of the remote run lives in the service: 20 bootstrap + 4 generated candidates, on
    # two instruments each; the CLI's own database holds no feedback
    status = client.feedback_status()
    assert status["feedback_records"] == 48
    assert status["champion"]["families"] == ["sma_cross"]
    forced = [j for s in got["steps"] for j in s["counts"].get("jobs", []) if j["status"] == "succeeded"]
    assert len(status["jobs"]) == len(forced) >= 1
    st = alphaloop("ml", "feedback", "status", "--json", home=tmp_path / "remote")
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["feedback_records"] == 0
    # `alphaloop ml feedback status|retrain --ml-url` read and drive the service's loop
    remote_st = alphaloop("ml", "feedback", "status", "--ml-url", url, "--json", home=tmp_path / "remote")
    assert remote_st.returncode == 0, remote_st.stderr
    shown = json.loads(remote_st.stdout)
    assert shown["feedback_records"] == 48 and shown["champion"]["version"] == status["champion"]["version"]
    assert [j["id"] for j in shown["jobs"]] == [j.id for j in status["jobs"]]
    re = alphaloop("ml", "feedback", "retrain", "--ml-url", url, "--force", "--seed", "1", "--json",
                   home=tmp_path / "remote")
    assert re.returncode == 0, re.stderr
    job = json.loads(re.stdout)
    assert job["status"] == "succeeded" and job["n_records"] == 48
    assert client.feedback_status(job["id"])["jobs"][0].promoted == job["promoted"]
    one = alphaloop("ml", "feedback", "status", "--ml-url", url, "--job", job["id"], home=tmp_path / "remote")
    assert one.returncode == 0 and job["id"] in one.stdout
    unknown = alphaloop("ml", "feedback", "status", "--ml-url", url, "--job", "job-nope", home=tmp_path / "remote")
    assert unknown.returncode == 10 and "NOT_FOUND" in unknown.stderr
    mixed = alphaloop("ml", "feedback", "retrain", "--ml-url", url, "--min-new", "5", home=tmp_path / "remote")
    assert mixed.returncode == 2 and "--min-new cannot go with --ml-url" in mixed.stderr

    # the strategy book is the CLI's: the ranking lists what the run evaluated
    ranked = alphaloop("discovery", "rank", "--limit", "50", "--json", home=tmp_path / "remote")
    assert len(json.loads(ranked.stdout)["strategies"]) == len(got["strategies"])


def test_remote_discover_refuses_an_unreachable_service_or_an_http_url(tmp_path):
    port = _free_ports(1)[0]
    r = alphaloop("discover", "--data", GOOG, "--trials", "4", "--ml-url", f"grpc://127.0.0.1:{port}",
                  home=tmp_path)
    assert r.returncode == 10
    assert f"ML service grpc://127.0.0.1:{port} cannot be reached" in r.stderr
    bad = alphaloop("discover", "--data", GOOG, "--trials", "4", "--ml-url", "http://127.0.0.1:8001", home=tmp_path)
    assert bad.returncode == 10 and "over gRPC" in bad.stderr
