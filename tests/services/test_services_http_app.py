"""The foundation every HTTP service starts from (``make_app``, ``bearer_auth``, ``LoopWorker``,
``serve_app``), on real uvicorn servers: health from real workers, metrics, the body limit, the
bearer token, and the mapping of alphaloop's errors to 4xx."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import httpx
from fastapi import Depends
from pydantic import BaseModel
from service_test_helpers import ThreadServer, free_port, metric_value, wait_ready

from alphaloop.core.errors import DataError, OrderError, StoreError
from alphaloop.services.http_app import bearer_auth, make_app
from alphaloop.services.serving import LoopWorker


class _Flaky:
    """A step that raises while ``failing`` is set: what a worker does while Redis is down."""

    def __init__(self) -> None:
        self.failing = threading.Event()
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.failing.is_set():
            raise ConnectionError("redis down")
        return 0


class Item(BaseModel):
    name: str


def _app(worker: LoopWorker, *, token: str | None = None, limit: int = 2048, checks=None):
    app = make_app("http-test", title="t", workers=[worker], checks=checks, max_body_bytes=limit,
                   health_prefixes=("/v2/health",))

    @app.post("/items", dependencies=[Depends(bearer_auth(token))])
    def create(item: Item) -> dict:
        return {"name": item.name}

    @app.get("/fail/{kind}")
    def fail(kind: str) -> dict:
        raise {"data": DataError("bad row", source="f.csv", line=3, field="close"), "order": OrderError("zero size"),
               "store": StoreError("database gone")}[kind]

    return app


def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_health_follows_the_workers_and_checks():
    step = _Flaky()
    worker = LoopWorker("consumer", "http-test", step, idle_s=0.01)
    state = {"ok": True}

    def db_check() -> dict:
        if state["ok"] is None:
            raise RuntimeError("check crashed")
        return {"ok": state["ok"]}

    with ThreadServer(_app(worker, checks={"db": db_check})) as s:
        body = httpx.get(f"{s.url}/health").json()
        assert body["status"] == "ok" and body["checks"]["consumer"]["ok"] and body["checks"]["db"] == {"ok": True}
        for path in ("/health/ready", "/v2/health/ready", "/health/live", "/v2/health/live"):
            assert httpx.get(f"{s.url}{path}").status_code == 200

        step.failing.set()
        _until(lambda: httpx.get(f"{s.url}/health").status_code == 503)
        body = httpx.get(f"{s.url}/health").json()
        assert body["status"] == "unavailable" and "redis down" in body["checks"]["consumer"]["error"]
        assert httpx.get(f"{s.url}/health/ready").status_code == 503
        assert httpx.get(f"{s.url}/v2/health/ready").status_code == 503
        assert httpx.get(f"{s.url}/health/live").status_code == 200  # alive, just not ready

        step.failing.clear()  # the dependency is back: picked up without a restart
        _until(lambda: httpx.get(f"{s.url}/health").status_code == 200)

        state["ok"] = None  # a crashing check is an answer (not ready), not a 500
        r = httpx.get(f"{s.url}/health")
        assert r.status_code == 503 and "check crashed" in r.json()["checks"]["db"]["error"]
        state["ok"] = False
        assert httpx.get(f"{s.url}/health").status_code == 503
        assert metric_value(httpx.get(f"{s.url}/metrics").text, "alphaloop_up", service="http-test") == 1
    assert not worker.health()["alive"]  # the lifespan stopped it with the server
    assert metric_value(_metrics_text(), "alphaloop_up", service="http-test") == 0


def _metrics_text() -> str:
    from prometheus_client import generate_latest

    return generate_latest().decode()


def test_metrics_measure_requests_and_errors():
    worker = LoopWorker("w", "http-test", lambda: 0)
    with ThreadServer(_app(worker)) as s:
        before = httpx.get(f"{s.url}/metrics").text
        for _ in range(3):
            assert httpx.post(f"{s.url}/items", json={"name": "a"}).status_code == 200
        httpx.get(f"{s.url}/fail/data")
        r = httpx.get(f"{s.url}/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        after = r.text

    def delta(name, **labels):
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("alphaloop_http_request_seconds_count", service="http-test", route="/items", method="POST",
                 status="200") == 3
    # Route templates, not raw paths, so the label set stays bounded.
    assert delta("alphaloop_http_request_seconds_count", service="http-test", route="/fail/{kind}",
                 status="422") == 1
    assert delta("alphaloop_errors_total", service="http-test", type="DataError") == 1


def test_alphaloop_errors_become_4xx_with_the_message():
    with ThreadServer(_app(LoopWorker("w", "http-test", lambda: 0))) as s:
        r = httpx.get(f"{s.url}/fail/data")
        assert r.status_code == 422
        assert r.json() == {"detail": "f.csv: line 3: field 'close': bad row", "error": "DataError"}
        r = httpx.get(f"{s.url}/fail/order")
        assert (r.status_code, r.json()["error"]) == (422, "OrderError")
        r = httpx.get(f"{s.url}/fail/store")  # not the caller's input: a conflict with the current state
        assert (r.status_code, r.json()) == (409, {"detail": "database gone", "error": "StoreError"})


def test_bearer_token_guards_state_changing_endpoints():
    with ThreadServer(_app(LoopWorker("w", "http-test", lambda: 0), token="tok")) as s:
        url = f"{s.url}/items"
        r = httpx.post(url, json={"name": "a"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert httpx.post(url, json={"name": "a"}, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.post(url, json={"name": "a"}, headers={"Authorization": "Basic dG9rOg=="}).status_code == 401
        assert httpx.post(url, json={"name": "a"}, headers={"Authorization": "Bearer tok"}).json() == {"name": "a"}
        assert httpx.get(f"{s.url}/health").status_code == 200  # reads stay open
    with ThreadServer(_app(LoopWorker("w", "http-test", lambda: 0), token=None)) as s:
        assert httpx.post(f"{s.url}/items", json={"name": "a"}).status_code == 200


def test_body_over_the_limit_by_content_length_is_413():
    with ThreadServer(_app(LoopWorker("w", "http-test", lambda: 0), limit=2048)) as s:
        r = httpx.post(f"{s.url}/items", json={"name": "x" * 3000})
        assert r.status_code == 413 and r.json()["detail"] == "request body larger than 2048 bytes"
        assert httpx.post(f"{s.url}/items", json={"name": "x" * 1000}).status_code == 200


def test_streamed_body_over_the_limit_is_413():
    def chunks():  # no Content-Length: the limit must be counted while the body streams in
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    with ThreadServer(_app(LoopWorker("w", "http-test", lambda: 0), limit=2048)) as s:
        r = httpx.post(f"{s.url}/items", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413


def test_loop_worker_retries_after_exceptions_and_reports_health():
    step = _Flaky()
    stopped = threading.Event()
    step.failing.set()
    worker = LoopWorker("retrying", "loop-test", step, idle_s=0.001, on_stop=stopped.set)
    assert worker.health() == {"ok": False, "alive": False}  # not started yet
    before = metric_value(_metrics_text(), "alphaloop_errors_total", service="loop-test", type="ConnectionError")
    worker.start()
    _until(lambda: step.calls >= 3)  # it keeps trying (backoff 0.05 s, doubling)
    h = worker.health()
    assert h["ok"] is False and h["alive"] and h["error"] == "ConnectionError: redis down" and h["failing_for_s"] >= 0
    assert worker.steps == 0
    step.failing.clear()
    _until(lambda: worker.health()["ok"])
    assert worker.health() == {"ok": True, "alive": True} and worker.steps >= 1
    errors = metric_value(_metrics_text(), "alphaloop_errors_total", service="loop-test", type="ConnectionError")
    assert errors - before >= 3
    worker.stop()
    assert stopped.is_set() and not worker.health()["alive"] and worker.stopping


_SERVE_SCRIPT = """
import pathlib, sys
from alphaloop.services.http_app import make_app
from alphaloop.services.serving import LoopWorker, serve_app

marker = pathlib.Path(sys.argv[2])
worker = LoopWorker("ticker", "serve-test", lambda: 1, on_stop=lambda: marker.write_text("stopped"))
serve_app(make_app("serve-test", title="t", workers=[worker]), "127.0.0.1", int(sys.argv[1]), log_level="warning")
marker.write_text(marker.read_text() + " returned")
"""


def _serve_and_terminate(tmp_path) -> tuple[int, str]:
    script, marker, port = tmp_path / "serve.py", tmp_path / "marker", free_port()
    script.write_text(_SERVE_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(marker)], stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc=proc)
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["checks"]["ticker"]["ok"] is True
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, marker.read_text() if marker.exists() else ""


def test_serve_app_stops_the_workers_on_sigterm(tmp_path):
    _, marker = _serve_and_terminate(tmp_path)
    assert marker.startswith("stopped")  # the lifespan stopped the worker


def test_serve_app_exits_0_on_sigterm(tmp_path):
    code, marker = _serve_and_terminate(tmp_path)
    assert (code, marker) == (0, "stopped returned")  # workers stopped, serve_app returned, clean exit
