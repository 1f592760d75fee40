"""The ML service over gRPC, against a real server on a loopback port serving a LightGBM model trained
here and exported to ONNX: answers equal onnxruntime run directly; bad input is INVALID_ARGUMENT
naming the field; the health service; the discovery RPCs (not ready without a loop, delegated with
one); the committed generated code is what the .proto gives."""

from __future__ import annotations

import filecmp
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from ml_helpers import (
    GOOG,
    MODEL,
    ThreadServer,
    artifact,
    feature_rows,
    onnx_direct,
    onnx_direct_batch,
    register_model,
    settings_for,
    trained,
    wait_for,
)

from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.discovery.regime import REGIME_FEATURES
from alphaloop.services.ml.client import MLGrpcClient
from alphaloop.services.ml.errors import RemoteInvalidArgument, RemoteNotFound, RemoteNotReady
from alphaloop.services.ml.http import build_app
from alphaloop.services.ml.v1 import ml_service_pb2 as pb
from alphaloop.services.ml.v1 import ml_service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]


class TinyDiscovery:
    """A real, minimal discovery loop: scores a spec by its parameters, keeps the feedback it gets."""

    def __init__(self):
        self.records = []

    def evaluate(self, specs, regime):
        if "untrained" in regime:  # like the real loop before its first training: no model, no scores
            return None
        return [1.0 / (1.0 + abs(s.params.get("fast", 0) - s.params.get("slow", 0)) * regime["volatility"])
                for s in specs]

    def submit_feedback(self, records):
        self.records.extend(records)
        return [r.id for r in records]

    def generate(self, family, n, keep, seed, regime):
        specs = [StrategySpec(family, {"fast": seed + i, "slow": seed + 3 * i + 5}) for i in range(n)]
        scored = [(s, score) for s, score in zip(specs, self.evaluate(specs, regime))]
        return sorted(scored, key=lambda t: -t[1])[:keep]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("ml-grpc")
    register_model(home)
    discovery = TinyDiscovery()
    with ThreadServer(build_app(settings_for(home), model=MODEL, grpc_port=0, discovery=discovery)) as srv, \
            MLGrpcClient(srv.grpc_target, timeout_s=5.0) as client:
        yield srv, client, discovery


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A service with no discovery loop attached."""
    home = tmp_path_factory.mktemp("ml-grpc-bare")
    register_model(home)
    with ThreadServer(build_app(settings_for(home), model=MODEL, grpc_port=0)) as srv, \
            MLGrpcClient(srv.grpc_target, timeout_s=5.0) as client:
        yield srv, client


def test_get_prediction_equals_onnxruntime_run_directly(served):
    _, client, _ = served
    rows = feature_rows(16)
    expected = onnx_direct(rows)
    scale = trained().metrics["rmse"]  # the runtime's confidence scale: the walk-forward RMSE
    for i, row in enumerate(rows):
        p, task = client.predict_remote(row, instrument=f"GOOG{i}")
        assert task == "regression" and p.model == MODEL and p.version == 1
        assert p.path.value == "onnx_cpu" and not p.cached
        assert p.value == expected[i]
        assert p.confidence == pytest.approx(math.tanh(abs(expected[i]) / scale), abs=1e-12)


def test_batch_predict_equals_row_by_row(served):
    _, client, _ = served
    rows = feature_rows(64)
    batch = client.predict_batch(rows, instruments="GOOG-batch")
    singles = np.array([client.predict(r, instrument="GOOG-single").value for r in rows])
    assert len(batch) == 64 and batch.paths == [batch.path] * 64 and batch.path.value == "onnx_cpu"
    # Equal to onnxruntime's own batch run; row by row, onnxruntime's one-row kernel path may round the
    # last float32 bit differently (the runtime's documented exactness), so within float32 precision.
    np.testing.assert_array_equal(batch.values, onnx_direct_batch(rows))
    np.testing.assert_array_equal(singles, onnx_direct(rows))
    np.testing.assert_allclose(batch.values, singles, rtol=2.5e-7, atol=0)
    # one instrument per row works too, and a second ask is served from the cache
    again = client.predict_batch(rows[:4], instruments=[f"I{i}" for i in range(4)])
    again2 = client.predict_batch(rows[:4], instruments=[f"I{i}" for i in range(4)])
    assert not again.cached.any() and again2.cached.all()
    np.testing.assert_array_equal(again.values, onnx_direct_batch(rows[:4]))
    np.testing.assert_array_equal(again2.values, again.values)


def test_named_features_are_checked_against_the_schema(served):
    _, client, _ = served
    row = feature_rows(1)[0]
    columns = artifact().schema.columns
    p = client.predict(dict(zip(columns, row)), instrument="GOOG-named")
    assert p.value == onnx_direct(row.reshape(1, -1))[0]
    swapped = [columns[1], columns[0], *columns[2:]]
    with pytest.raises(RemoteInvalidArgument, match="feature_names"):
        client.predict(dict(zip(swapped, row)), instrument="GOOG")


@pytest.mark.parametrize(("request_kwargs", "field"), [
    ({"features": [0.1, 0.2, 0.3]}, "features"),
    ({"features": [float("nan")] * 22}, "features"),
    ({"instrument": ""}, "instrument"),
    ({"model": ""}, None),  # empty model: the default one answers
])
def test_bad_input_is_invalid_argument_naming_the_field(served, request_kwargs, field):
    srv, _, _ = served
    base = {"model": MODEL, "instrument": "GOOG", "features": feature_rows(1)[0].tolist()}
    with grpc.insecure_channel(srv.grpc_target) as channel:
        stub = pb_grpc.MLServiceStub(channel)
        request = pb.PredictRequest(**{**base, **request_kwargs})
        if field is None:
            assert stub.GetPrediction(request, timeout=5).model == MODEL
            return
        with pytest.raises(grpc.RpcError) as info:
            stub.GetPrediction(request, timeout=5)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"field '{field}'" in info.value.details()


def test_batch_shape_errors_and_unknown_model(served):
    srv, client, _ = served
    with grpc.insecure_channel(srv.grpc_target) as channel:
        stub = pb_grpc.MLServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.BatchPredict(pb.BatchPredictRequest(instruments=["A"], n_features=22, features=[0.0] * 30), timeout=5)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "field 'features'" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            stub.BatchPredict(pb.BatchPredictRequest(instruments=["A", "B", "C"], n_features=22,
                                                     features=feature_rows(2).ravel().tolist()), timeout=5)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "instruments" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            stub.BatchPredict(pb.BatchPredictRequest(n_features=22), timeout=5)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "at least one row" in info.value.details()
    with pytest.raises(RemoteNotFound, match="no model named 'nope'"):
        client.predict(feature_rows(1)[0], instrument="GOOG", model="nope")


def test_health_service_answers_serving(served):
    _, client, _ = served
    assert client.health() == "SERVING"
    assert client.health("alphaloop.ml.v1.MLService") == "SERVING"
    assert client.health(MODEL) == "SERVING"
    assert client.health("no-such-model") == "SERVICE_UNKNOWN"


def test_model_metrics_are_the_registered_validation_metrics(served):
    _, client, _ = served
    m = client.model_metrics(MODEL)
    expected = trained().metrics
    assert m["version"] == 1 and m["task"] == "regression" and m["horizon"] == 5 and m["aliases"] == {"champion": 1}
    for key in ("rmse", "mae", "directional_accuracy"):
        assert m["metrics"][key] == pytest.approx(expected[key], rel=1e-12)


def test_train_models_over_grpc_registers_a_model(served, tmp_path):
    _, client, _ = served
    with pytest.raises(RemoteInvalidArgument, match="data_path"):
        client.train(str(tmp_path / "missing.csv"))
    with pytest.raises(RemoteInvalidArgument, match="params_json"):
        client._call(client._stub.TrainModels, pb.TrainModelsRequest(data_path=str(GOOG), params_json="[1]"), 5.0)
    job = client.train(str(GOOG), model="linear", horizon=3, folds=3, name="goog-linear-grpc")
    assert job["status"] in ("queued", "running") and job["job_id"]
    done = wait_for(lambda: (s := client.training_status(job["job_id"]))["status"] in ("succeeded", "failed") and s,
                    timeout=120, what="the training job")
    assert done["status"] == "succeeded", done["error"]
    assert (done["name"], done["version"]) == ("goog-linear-grpc", 1)
    m = client.model_metrics("goog-linear-grpc")
    assert m["horizon"] == 3 and m["metrics"]["rmse"] == pytest.approx(done["metrics"]["rmse"])
    assert m["aliases"] == {"champion": 1}  # the first version of a name becomes its champion
    with pytest.raises(RemoteNotFound):
        client.training_status("no-such-job")


def _record(rid: str) -> dict:
    return {"id": rid, "spec": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}}, "instrument": "GOOG",
            "start_ns": 0, "end_ns": 86_400_000_000_000, "n_bars": 100,
            "regime": {k: 0.5 for k in REGIME_FEATURES}, "metrics": {"sharpe": 1.2}, "backtest_score": 0.6}


def test_discovery_rpcs_are_not_ready_without_a_loop(bare):
    _, client = bare
    regime = {"volatility": 0.01}
    for call in (lambda: client.evaluate([StrategySpec("sma_cross", {"fast": 5, "slow": 20})], regime),
                 lambda: client.submit_feedback([_record("r1")]),
                 lambda: client.generate("sma_cross", 4, 2, 0, regime)):
        with pytest.raises(RemoteNotReady) as info:
            call()
        assert info.value.code == "FAILED_PRECONDITION" and "not ready" in str(info.value)


def test_discovery_rpcs_delegate_to_the_injected_loop(served):
    _, client, discovery = served
    regime = {"volatility": 0.5}
    specs = [StrategySpec("sma_cross", {"fast": 5, "slow": 20}), StrategySpec("sma_cross", {"fast": 10, "slow": 12})]
    assert client.evaluate(specs, regime) == pytest.approx([1 / (1 + 15 * 0.5), 1 / (1 + 2 * 0.5)])
    with pytest.raises(RemoteNotReady, match="no strategy-evaluation model"):
        client.evaluate(specs, {"volatility": 0.5, "untrained": 1.0})
    assert client.submit_feedback([_record("run-1"), _record("run-2")]) == ["run-1", "run-2"]
    assert [r.to_dict() for r in discovery.records] == [_record("run-1"), _record("run-2")]
    found = client.generate("sma_cross", 5, 2, 7, regime)
    assert [s.params for s, _ in found] == [{"fast": 7, "slow": 12}, {"fast": 8, "slow": 15}]
    assert [score for _, score in found] == pytest.approx([1 / (1 + 5 * 0.5), 1 / (1 + 7 * 0.5)])
    bad = _record("run-3")
    bad["backtest_score"] = 1.5
    with pytest.raises(RemoteInvalidArgument, match=r"records\[0\].*backtest_score"):
        client.submit_feedback([bad])
    with pytest.raises(RemoteInvalidArgument, match="keep"):
        client.generate("sma_cross", 2, 3, 0, regime)
    assert len(discovery.records) == 2  # the refused record never reached the loop


def test_spec_params_must_be_a_json_object(served):
    srv, _, _ = served
    with grpc.insecure_channel(srv.grpc_target) as channel:
        stub = pb_grpc.MLServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.EvaluateStrategy(pb.EvaluateStrategyRequest(specs=[pb.StrategySpec(name="sma_cross",
                                                                                    params_json="[1, 2]")]), timeout=5)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "specs[0].params_json" in info.value.details()
    assert json.loads('{"a": 1}')  # the format the field expects


def test_committed_generated_code_is_current(tmp_path):
    subprocess.run(["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)], check=True, capture_output=True,
                   env={**os.environ, "PYTHON": sys.executable})
    committed = ROOT / "src" / "alphaloop" / "services" / "ml" / "v1"
    names = ["ml_service_pb2.py", "ml_service_pb2.pyi", "ml_service_pb2_grpc.py"]
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, committed, names, shallow=False)
    assert (mismatch, errors) == ([], []), "run scripts/gen_proto.sh and commit the result"
    assert "from . import ml_service_pb2" in (committed / "ml_service_pb2_grpc.py").read_text()


def test_a_model_that_cannot_load_is_not_serving(tmp_path):
    version = register_model(tmp_path)
    onnx_file = tmp_path / "models" / MODEL / f"{version}.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"tampered")  # the registry's sha256 no longer matches
    with ThreadServer(build_app(settings_for(tmp_path), model=MODEL, grpc_port=0)) as srv, \
            MLGrpcClient(srv.grpc_target, timeout_s=5.0) as client:
        assert client.health() == "NOT_SERVING" and client.health(MODEL) == "NOT_SERVING"
        with pytest.raises(RemoteNotReady, match="sha256"):
            client.predict(feature_rows(1)[0], instrument="GOOG")
        health = httpx.get(f"{srv.url}/health", timeout=10)
        assert health.status_code == 503 and "sha256" in health.json()["checks"]["models"]["error"]
