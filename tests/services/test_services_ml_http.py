"""The ML service over HTTP, served by a real uvicorn server on a loopback port: predictions equal
onnxruntime's, 4xx naming the field for bad input, the model list and metrics, KServe-v2 health,
training jobs that run to a registered model, the bearer token on /train, Prometheus metrics; and the
"tensorrt" service on a host without a GPU, which falls down the chain and says so."""

from __future__ import annotations

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

from alphaloop.services.ml.http import build_app
from alphaloop.store import SqlModelRepository, Store

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("ml-http")
    register_model(home)
    settings = settings_for(home, ALPHALOOP_SERVICE_TOKEN=TOKEN)
    with ThreadServer(build_app(settings, model=MODEL, grpc_port=0)) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as http:
        yield srv, http, home


def test_predict_equals_onnxruntime(served):
    _, http, _ = served
    rows = feature_rows(8)
    expected = onnx_direct(rows)
    for i, row in enumerate(rows):
        r = http.post("/predict", json={"instrument": "GOOG", "features": row.tolist()})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["value"] == expected[i] and body["path"] == "onnx_cpu" and body["model"] == MODEL
        assert body["task"] == "regression" and body["version"] == 1
    named = dict(zip(artifact().schema.columns, rows[0].tolist()))
    assert http.post("/predict", json={"instrument": "GOOG", "features": named}).json()["value"] == expected[0]


def test_predict_batch_equals_onnxruntime_batch(served):
    _, http, _ = served
    rows = feature_rows(32)
    r = http.post("/predict/batch", json={"instruments": "GOOG", "rows": rows.tolist(),
                                          "feature_names": list(artifact().schema.columns)})
    assert r.status_code == 200, r.text
    body = r.json()
    np.testing.assert_array_equal(body["values"], onnx_direct_batch(rows))
    assert body["paths"] == ["onnx_cpu"] * 32 and len(body["confidences"]) == 32


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("/predict", {"instrument": "GOOG", "features": [1.0, 2.0]}, 422, "features"),
    ("/predict", {"instrument": "", "features": [0.0] * 22}, 422, None),  # pydantic: min_length
    ("/predict", {"instrument": "GOOG"}, 422, None),
    ("/predict", {"instrument": "GOOG", "features": [0.0] * 22, "model": "nope"}, 404, None),
    ("/predict/batch", {"instruments": "GOOG", "rows": [[0.0] * 22, [0.0] * 21]}, 422, "rows"),
    ("/predict/batch", {"instruments": ["A", "B"], "rows": [[0.0] * 22] * 3}, 422, "instruments"),
    ("/predict/batch", {"instruments": "A", "rows": []}, 422, "rows"),
])
def test_bad_input_is_4xx_naming_the_field(served, path, body, status, field):
    _, http, _ = served
    r = http.post(path, json=body)
    assert r.status_code == status, r.text
    if field is not None:
        assert r.json()["field"] == field and f"field '{field}'" in r.json()["detail"]


def test_models_metrics_and_health(served):
    _, http, _ = served
    models = http.get("/models").json()
    assert models["default_model"] == MODEL and models["providers"] == ["cpu"]
    [entry] = models["models"]
    assert entry["name"] == MODEL and entry["served_version"] == 1 and entry["path"] == "onnx_cpu" and entry["ready"]
    m = http.get(f"/models/{MODEL}/metrics").json()
    assert m["metrics"]["rmse"] == pytest.approx(trained().metrics["rmse"], rel=1e-12)
    assert http.get("/models/nope/metrics").status_code == 404
    assert http.get(f"/models/{MODEL}/metrics", params={"version": 9}).status_code == 404
    for path in ("/health", "/health/ready", "/v2/health/ready", "/v2/health/live"):
        assert http.get(path).status_code == 200, path
    ready = http.get(f"/v2/models/{MODEL}/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert http.get("/v2/models/nope/ready").status_code == 404


def test_train_requires_the_bearer_token(served):
    _, http, _ = served
    body = {"data_path": str(GOOG)}
    assert http.post("/train", json=body).status_code == 401
    assert http.post("/train", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_train_job_runs_to_a_registered_model(served, tmp_path):
    _, http, home = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = http.post("/train", json={"data_path": str(tmp_path / "missing.csv")}, headers=auth)
    assert bad.status_code == 422 and bad.json()["field"] == "data_path"
    broken = tmp_path / "broken.csv"
    broken.write_text("date,open,high,low,close,volume\n2020-01-01,1,2,0.5,x,10\n")
    bad = http.post("/train", json={"data_path": str(broken)}, headers=auth)
    assert bad.status_code == 422 and "broken.csv" in bad.json()["detail"]
    assert http.post("/train", json={"data_path": str(GOOG), "horizon": 0}, headers=auth).status_code == 422
    too_long = http.post("/train", json={"data_path": "/" + "a" * 300}, headers=auth)  # the OS refuses the name
    assert too_long.status_code == 422 and too_long.json()["field"] == "data_path"

    r = http.post("/train", json={"data_path": str(GOOG), "name": "goog-linear", "model": "linear",
                                  "horizon": 3, "folds": 3}, headers=auth)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert r.json()["status"] in ("queued", "running")
    done = wait_for(lambda: (s := http.get(f"/train/{job_id}").json())["status"] in ("succeeded", "failed") and s,
                    timeout=120, what="the training job")
    assert done["status"] == "succeeded", done["error"]
    assert done["name"] == "goog-linear" and done["version"] == 1 and done["finished_at"] >= done["created_at"]
    settings = settings_for(home)
    with Store.from_settings(settings) as store:
        registry = SqlModelRepository(store).registry(settings.models_dir)
        record = registry.resolve("goog-linear", alias="champion")
        assert record.version == 1 and record.horizon == 3 and record.task == "regression"
        assert record.metrics["overall"]["rmse"] == pytest.approx(done["metrics"]["rmse"])
    # the new model answers at once, by name
    p = http.post("/predict", json={"model": "goog-linear", "instrument": "GOOG",
                                    "features": feature_rows(1)[0].tolist()})
    assert p.status_code == 200 and p.json()["model"] == "goog-linear" and p.json()["path"] == "onnx_cpu"
    assert http.get("/train/no-such-job").status_code == 404


def test_prometheus_metrics_show_paths_cache_and_grpc(served):
    srv, http, _ = served
    from alphaloop.services.ml.client import MLGrpcClient

    row = feature_rows(1)[0]
    with MLGrpcClient(srv.grpc_target) as client:
        client.predict(row, instrument="METRICS")
        assert client.predict(row, instrument="METRICS").cached
    text = http.get("/metrics").text
    assert 'alphaloop_prediction_seconds_count{path="onnx_cpu",service="ml"}' in text
    assert 'alphaloop_cache_requests_total{result="hit",service="ml"}' in text
    assert 'alphaloop_grpc_request_seconds_count{code="OK",method="GetPrediction",service="ml"}' in text
    assert 'alphaloop_http_request_seconds_count{method="POST",route="/predict",service="ml",status="200"}' in text


def test_tensorrt_service_without_a_gpu_falls_back_and_says_so(tmp_path):
    register_model(tmp_path)
    app = build_app(settings_for(tmp_path), service="tensorrt", model=MODEL, grpc_port=0)
    with ThreadServer(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        models = http.get("/models").json()
        assert models["providers"] == ["tensorrt", "cuda", "cpu"]
        row = feature_rows(1)[0]
        body = http.post("/predict", json={"instrument": "GOOG", "features": row.tolist()}).json()
        # no GPU provider runs here: the path says what really answered (micro-batched on this service)
        assert body["path"] == "onnx_cpu" and body["value"] == onnx_direct(row.reshape(1, -1))[0]
        report = srv.app.state.host.get(MODEL).runtime.provider_report()
        steps = {a.provider: a.status for a in report.attempts}
        assert steps["tensorrt"] in ("skipped", "failed") and steps["cuda"] in ("skipped", "failed")
        assert steps["cpu"] == "active"
