"""The ML clients against real servers on loopback: retries (only on retryable codes, with the
attempts counted by the server itself), deadlines, the circuit breaker's closed/open/half-open cycle,
the failover chain TensorRT runner -> ONNX runner -> default, the cache in front, the HTTP client, and
the chain built from settings."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import grpc
import numpy as np
import pytest
from ml_helpers import MODEL, ThreadServer, feature_rows, onnx_direct, register_model, settings_for
from service_test_helpers import free_port

from alphaloop.core.errors import ConfigError
from alphaloop.core.predictions import InferencePath
from alphaloop.ml.cache import PredictionCache
from alphaloop.services.ml.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from alphaloop.services.ml.client import (
    CachedPredictor,
    FailoverPredictor,
    MLGrpcClient,
    MLHttpClient,
    RemotePredictor,
)
from alphaloop.services.ml.errors import (
    CircuitOpenError,
    RemoteInvalidArgument,
    RemoteTimeout,
    RemoteUnavailable,
)
from alphaloop.services.ml.http import build_app
from alphaloop.services.ml.v1 import ml_service_pb2 as pb
from alphaloop.services.ml.v1 import ml_service_pb2_grpc as pb_grpc
from alphaloop.services.ml.wiring import build_remote_predictor, parse_runner_url


class CountingServicer(pb_grpc.MLServiceServicer):
    """A tiny real servicer: sleeps ``delay`` seconds, or aborts with ``code``; counts the calls."""

    def __init__(self, *, delay: float = 0.0, code: grpc.StatusCode | None = None):
        self.delay, self.code, self.calls = delay, code, 0
        self._lock = threading.Lock()

    def GetPrediction(self, request, context):
        with self._lock:
            self.calls += 1
        if self.code is not None:
            context.abort(self.code, "refused on purpose")
        time.sleep(self.delay)
        return pb.PredictResponse(value=0.25, confidence=0.5, model="tiny", version=1, path="onnx_cpu",
                                  task="regression")


class RawServer:
    def __init__(self, servicer, port: int = 0):
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
        pb_grpc.add_MLServiceServicer_to_server(servicer, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.target = f"127.0.0.1:{self.port}"

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop(0).wait(5)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("ml-client")
    register_model(home)
    with ThreadServer(build_app(settings_for(home), model=MODEL, grpc_port=0)) as srv:
        yield srv



def row():
    return feature_rows(1)[0]


def test_deadline_exceeded_is_retried_then_surfaces():
    servicer = CountingServicer(delay=0.3)
    with RawServer(servicer) as srv, MLGrpcClient(srv.target, timeout_s=0.05, retries=2, backoff_s=0.001) as client:
        t0 = time.monotonic()
        with pytest.raises(RemoteTimeout, match="DEADLINE_EXCEEDED"):
            client.predict([0.0], instrument="X")
        assert time.monotonic() - t0 < 0.3  # three 50 ms deadlines, not the server's 300 ms
        assert client.attempts == 3
        wait_for_calls(servicer, 3)


def wait_for_calls(servicer, n):
    deadline = time.monotonic() + 5
    while servicer.calls < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert servicer.calls == n


@pytest.mark.parametrize(("code", "retried"), [
    (grpc.StatusCode.INVALID_ARGUMENT, False), (grpc.StatusCode.NOT_FOUND, False),
    (grpc.StatusCode.INTERNAL, False), (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
    (grpc.StatusCode.UNAVAILABLE, True),
])
def test_only_retryable_codes_are_retried(code, retried):
    servicer = CountingServicer(code=code)
    with RawServer(servicer) as srv, MLGrpcClient(srv.target, timeout_s=1.0, retries=2, backoff_s=0.001) as client:
        with pytest.raises(Exception) as info:
            client.predict([0.0], instrument="X")
        assert servicer.calls == (3 if retried else 1)
        assert info.value.code == code.name


def test_nothing_listening_is_unavailable_after_retries():
    with MLGrpcClient(f"127.0.0.1:{free_port()}", timeout_s=0.5, retries=2, backoff_s=0.001) as client:
        with pytest.raises(RemoteUnavailable, match="UNAVAILABLE"):
            client.predict([0.0], instrument="X")
        assert client.attempts == 3


def test_breaker_opens_after_n_failures_and_half_opens_after_the_timeout():
    now = [1000.0]
    breaker = CircuitBreaker("onnx", failure_threshold=3, reset_timeout_s=5.0, clock=lambda: now[0])
    port = free_port()
    client = MLGrpcClient(f"127.0.0.1:{port}", timeout_s=0.5, retries=0)
    runner = RemotePredictor(client, name="onnx", breaker=breaker)
    for _ in range(3):
        assert breaker.state == CLOSED
        with pytest.raises(RemoteUnavailable):
            runner.predict([0.0], instrument="X")
    assert breaker.state == OPEN and breaker.opened == 1
    sent = client.attempts
    servicer = CountingServicer()
    with RawServer(servicer, port=port):
        assert client.wait_ready(5.0)  # the channel reconnects (it had failed: gRPC backs off)
        with pytest.raises(CircuitOpenError):  # open: not even tried, though the server is back
            runner.predict([0.0], instrument="X")
        assert client.attempts == sent and servicer.calls == 0
        now[0] += 5.0
        assert breaker.state == HALF_OPEN
        p = runner.predict([0.0], instrument="X")  # the trial call goes through and closes it
        assert p.value == 0.25 and servicer.calls == 1 and breaker.state == CLOSED
    # a failed trial opens it again for another timeout
    for _ in range(3):
        with pytest.raises(RemoteUnavailable):
            runner.predict([0.0], instrument="X")
    now[0] += 5.0
    assert breaker.state == HALF_OPEN
    with pytest.raises(RemoteUnavailable):
        runner.predict([0.0], instrument="X")
    assert breaker.state == OPEN and breaker.opened == 3
    client.close()


def test_half_open_lets_one_trial_through_at_a_time():
    now = [0.0]
    breaker = CircuitBreaker("x", failure_threshold=1, reset_timeout_s=1.0, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 1.0
    assert breaker.allow() and not breaker.allow()  # the second caller waits for the trial's verdict
    breaker.record_success()
    assert breaker.allow() and breaker.allow()


def test_bad_input_does_not_count_against_the_breaker(served):
    breaker = CircuitBreaker("onnx", failure_threshold=1)
    runner = RemotePredictor(MLGrpcClient(served.grpc_target), name="onnx", breaker=breaker)
    with pytest.raises(RemoteInvalidArgument):
        runner.predict([1.0, 2.0], instrument="X")
    assert breaker.state == CLOSED
    runner.close()


def test_failover_uses_the_next_runner_then_the_default(served):
    dead = MLGrpcClient(f"127.0.0.1:{free_port()}", timeout_s=0.5, retries=0)
    trt = RemotePredictor(dead, name="tensorrt", breaker=CircuitBreaker("tensorrt", failure_threshold=2))
    onnx = RemotePredictor(MLGrpcClient(served.grpc_target), name="onnx")
    chain = FailoverPredictor([trt, onnx])
    x = row()
    expected = onnx_direct(x.reshape(1, -1))[0]
    for _ in range(3):
        p = chain.predict(x, instrument="GOOG", timeout=2.0)
        assert p.path is InferencePath.ONNX_CPU and p.value == expected and p.model == MODEL
    stats = chain.stats()
    assert stats["answered"] == {"onnx": 3}
    assert stats["breakers"][0]["state"] == OPEN and stats["breakers"][0]["rejected"] == 1
    assert chain.task == "regression"
    with pytest.raises(RemoteInvalidArgument):  # bad input is not failed over
        chain.predict([1.0], instrument="GOOG")
    # every runner down: the default predictor answers, neutral, and says so
    alone = FailoverPredictor([RemotePredictor(MLGrpcClient(f"127.0.0.1:{free_port()}", retries=0), name="onnx")],
                              model=MODEL)
    p = alone.predict(x, instrument="GOOG", timeout=1.0)
    assert (p.path, p.value, p.confidence, p.model) == (InferencePath.DEFAULT, 0.0, 0.0, MODEL)
    assert alone.stats()["answered"] == {"default": 1} and "onnx" in alone.stats()["last_errors"]
    chain.close()
    alone.close()


def test_cached_predictor_serves_repeats_and_never_stores_defaults(served):
    onnx = RemotePredictor(MLGrpcClient(served.grpc_target), name="onnx")
    cached = CachedPredictor(FailoverPredictor([onnx]), PredictionCache(ttl_s=60))
    x = row()
    first = cached.predict(x, instrument="CACHE-TEST", bar_time=123)
    again = cached.predict(x, instrument="CACHE-TEST", bar_time=123)
    assert not first.cached and again.cached and again.value == first.value and again.path is InferencePath.ONNX_CPU
    by_row = cached.predict(x, instrument="CACHE-TEST")  # keyed on the row's bytes: a miss here
    assert cached.predict(x, instrument="CACHE-TEST").value == by_row.value == first.value
    stats = cached.cache.stats()
    assert (stats.hits, stats.misses) == (2, 2)
    down = CachedPredictor(FailoverPredictor([RemotePredictor(MLGrpcClient(f"127.0.0.1:{free_port()}", retries=0),
                                                              name="onnx")]))
    assert down.predict(x, instrument="CACHE-TEST", bar_time=1).path is InferencePath.DEFAULT
    assert len(down.cache) == 0
    cached.close()
    down.close()


def test_http_client_answers_like_the_grpc_client(served):
    x = feature_rows(4)
    with MLHttpClient(served.url) as http, MLGrpcClient(served.grpc_target) as rpc:
        for r in x:
            assert http.predict(r, instrument="H").value == rpc.predict(r, instrument="G").value
        batch = http.predict_batch(x, instruments="H")
        np.testing.assert_array_equal(batch.values, rpc.predict_batch(x, instruments="G").values)
        assert http.health() == "SERVING" and http.health(MODEL) == "SERVING" and http.health("nope") == "SERVICE_UNKNOWN"
        with pytest.raises(RemoteInvalidArgument, match="features"):
            http.predict([1.0], instrument="H")
    with MLHttpClient(f"http://127.0.0.1:{free_port()}", retries=1, backoff_s=0.001) as down:
        with pytest.raises(RemoteUnavailable):
            down.predict(x[0], instrument="H")
        assert down.attempts == 2


def test_chain_from_settings(served, tmp_path):
    settings = settings_for(tmp_path, TENSORRT_RUNNER_URL=f"grpc://127.0.0.1:{free_port()}",
                            ONNX_RUNNER_URL=f"http://127.0.0.1:{served.port}")
    predictor = build_remote_predictor(settings, model=MODEL, timeout_s=1.0)
    x = row()
    p = predictor.predict(x, instrument="GOOG", bar_time=1, timeout=3.0)
    assert p.path is InferencePath.ONNX_CPU and p.value == onnx_direct(x.reshape(1, -1))[0]
    assert [r.name for r in predictor.predictor.runners] == ["tensorrt", "onnx"]
    assert predictor.stats()["answered"] == {"onnx": 1}
    predictor.close()
    assert build_remote_predictor(settings_for(tmp_path)) is None
    assert parse_runner_url("grpc://localhost:50051") == ("grpc", "localhost:50051")
    for bad in ("localhost:50051", "grpc://localhost", "ftp://h:1", "grpc://h:99999", "grpc://h:1/x"):
        with pytest.raises(ConfigError, match="ONNX_RUNNER_URL"):
            parse_runner_url(bad, "ONNX_RUNNER_URL")
