"""train -> export -> register -> load -> predict from the command line, on real data and real ONNX."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from tests_cli_helpers import FIXTURES, alphaloop

from alphaloop.data import load_bars
from alphaloop.ml.features import make_features

BTC = FIXTURES / "BTC-USD_daily.csv"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    out = alphaloop("ml", "train", "--data", str(BTC), "--model", "lightgbm", "--horizon", "5", "--json", home=home)
    assert out.returncode == 0, out.stderr
    return home, json.loads(out.stdout)


def test_train_registers_a_champion(trained):
    home, doc = trained
    assert doc["version"] == 1 and doc["aliases"] == {"champion": 1}
    assert 0.0 <= doc["metrics"]["directional_accuracy"] <= 1.0
    listed = json.loads(alphaloop("ml", "models", "list", "--json", home=home).stdout)
    assert listed["models"] == [{"name": doc["name"], "latest_version": 1, "n_versions": 1, "aliases": {"champion": 1}}]


def test_predict_matches_onnxruntime_on_the_registered_file(trained):
    home, doc = trained
    out = alphaloop("ml", "predict", "--model", doc["name"], "--data", str(BTC), "--last", "20", "--json", home=home)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["providers"]["path"] == "onnx_cpu" and len(got["predictions"]) == 20
    # independent: run the stored ONNX file with onnxruntime directly on our own feature rows
    onnx_file = home / "models" / doc["name"] / "1.onnx"
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    x = make_features(load_bars(BTC)).iloc[-20:].to_numpy(dtype=np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: x})[0].ravel()
    np.testing.assert_allclose([p["value"] for p in got["predictions"]], expected, rtol=1e-6, atol=1e-7)
    assert all(p["path"] == "onnx_cpu" for p in got["predictions"])
    # recorded, and judged once the horizon has passed: the last 5 are still pending
    acc = json.loads(alphaloop("ml", "accuracy", "--data", str(BTC), "--json", home=home).stdout)["models"]
    assert acc[0]["n"] == 15 and acc[0]["pending"] == 5


def test_a_tampered_model_file_is_refused(trained, tmp_path):
    home, doc = trained
    onnx_file = home / "models" / doc["name"] / "1.onnx"
    original = onnx_file.read_bytes()
    try:
        onnx_file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        out = alphaloop("ml", "predict", "--model", doc["name"], "--data", str(BTC), home=home)
        assert out.returncode == 8 and "sha256" in out.stderr
    finally:
        onnx_file.write_bytes(original)


@pytest.mark.parametrize("args,needle", [
    (["ml", "predict", "--model", "nope", "--data", str(BTC)], "nope"),
    (["ml", "models", "show", "nope"], "nope"),
    (["ml", "models", "promote", "nope", "3"], "nope"),
])
def test_unknown_models(trained, args, needle):
    home, _ = trained
    out = alphaloop(*args, home=home)
    assert out.returncode == 8 and needle in out.stderr


def test_too_little_data_for_training(tmp_path):
    short = tmp_path / "short.csv"
    short.write_text("\n".join(BTC.read_text().splitlines()[:60]) + "\n")
    out = alphaloop("ml", "train", "--data", str(short), "--horizon", "5", home=tmp_path)
    assert out.returncode == 8 and "short.csv" not in out.stdout and out.stderr.startswith("error:")


def test_sentiment_text_and_file(tmp_path):
    out = alphaloop("sentiment", "Regulator opens probe; company cuts guidance and warns on profit", "--json",
                    home=tmp_path)
    doc = json.loads(out.stdout)
    assert doc["label"] == "negative" and -1 <= doc["score"] < 0
    news = tmp_path / "news.csv"
    news.write_text("time,instrument,text\n2024-01-02,AAPL,Apple beats expectations on record revenue\n"
                    "2024-01-02,XOM,Exxon to hold annual meeting on May 29\n")
    res = json.loads(alphaloop("sentiment", "--file", str(news), "--json", home=tmp_path).stdout)["results"]
    assert [r["label"] for r in res] == ["positive", "neutral"] and res[0]["instrument"] == "AAPL"


@pytest.mark.parametrize("content,code,needle", [
    ("headline\nfoo\n", 4, "no `text` column"),
    ("text\nfine news\n   \n", 4, "line 3"),
])
def test_sentiment_bad_files(tmp_path, content, code, needle):
    news = tmp_path / "news.csv"
    news.write_text(content)
    out = alphaloop("sentiment", "--file", str(news), home=tmp_path)
    assert out.returncode == code and needle in out.stderr


def test_sentiment_needs_text_or_file(tmp_path):
    assert alphaloop("sentiment", home=tmp_path).returncode == 2
    out = alphaloop("sentiment", "   ", home=tmp_path)
    assert out.returncode == 8 and "empty" in out.stderr.lower()
