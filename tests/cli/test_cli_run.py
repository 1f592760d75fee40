"""`alphaloop run`, `explain` and `demo`: the live pipeline from the command line, checked against the
backtester and the stored chain."""

from __future__ import annotations

import json
import sqlite3

import pytest
from tests_cli_helpers import FIXTURES, alphaloop

from alphaloop.backtest import run_backtest
from alphaloop.data import load_bars, sample_paths
from alphaloop.execution import BrokerConfig
from alphaloop.strategy import load_strategy

GOOG = FIXTURES / "GOOG_daily.csv"


def test_run_replays_a_file_like_the_backtester(tmp_path):
    out = alphaloop("run", "--data", str(GOOG), "--strategy", "sma_cross", "--param", "fast=10", "--param", "slow=20",
                    "--cash", "10000", "--commission", "0.002", "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    ref = run_backtest(load_strategy("sma_cross", {"fast": 10, "slow": 20}), load_bars(GOOG),
                       BrokerConfig(initial_cash=10_000.0, commission=__import__("alphaloop.execution",
                                    fromlist=["Commission"]).Commission(rate=0.002)))
    assert doc["ended"] == "end_of_data" and doc["bars"] == len(load_bars(GOOG))
    assert doc["final_equity"] == pytest.approx(ref.final_equity, rel=1e-12)
    assert doc["fills"] == len(ref.fills)
    with sqlite3.connect(tmp_path / "alphaloop.db") as con:
        assert con.execute("select count(*) from fills").fetchone()[0] == len(ref.fills)
        assert con.execute("select status from live_runs").fetchone()[0] == "finished"


def test_explain_prints_the_chain_of_a_decision(tmp_path):
    out = alphaloop("run", "--data", str(GOOG), "--strategy", "ml_multifactor", "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    assert run["orders"] > 0 and run["model"] is None
    chain = json.loads(alphaloop("explain", f"{run['run_id']}:1", "--json", home=tmp_path).stdout)
    d = chain["decision"]
    assert chain["order"]["id"] == f"{run['run_id']}:1" and d["action"] in ("buy", "sell")
    factors = {f["name"]: f for f in d["factors"]}
    assert factors["ml"]["missing"] and factors["ml"]["reason"] == "no model"
    assert abs(d["score"]) >= d["threshold"]
    assert chain["fills"] and chain["fills"][0]["bar"] == d["bar"] + 1  # filled at the next bar's open
    text = alphaloop("explain", f"{run['run_id']}:1", home=tmp_path)
    assert "score" in text.stdout and "factor" in text.stdout and "fill bar" in text.stdout
    missing = alphaloop("explain", "nope:1", home=tmp_path)
    assert missing.returncode == 7 and "nope:1" in missing.stderr


def test_synthetic_stream_stops_at_bars(tmp_path):
    out = alphaloop("run", "--synthetic", "--bars", "120", "--strategy", "sma_cross", "--json", home=tmp_path)
    doc = json.loads(out.stdout)
    assert doc["ended"] == "max_bars" and doc["bars"] == 120


def test_unknown_instrument_is_a_usage_error(tmp_path):
    out = alphaloop("run", "--data", str(GOOG), "--instruments", "NOPE", home=tmp_path)
    assert out.returncode == 2 and "NOPE" in out.stderr


def test_demo_trains_a_model_then_runs_the_pipeline(tmp_path):
    out = alphaloop("demo", "--bars", "400", home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "training one" in out.stdout and "demo-lightgbm v1" in out.stdout
    assert "inference paths" in out.stdout and "onnx_cpu" in out.stdout
    again = alphaloop("demo", "--bars", "50", home=tmp_path)
    assert again.returncode == 0 and "training one" not in again.stdout  # the registered model is reused
    # the strategy's ML predictions were filed and can be judged per strategy
    data = [arg for p in sample_paths() for arg in ("--data", str(p))]
    acc = json.loads(alphaloop("ml", "accuracy", "--by", "strategy", *data, "--json", home=tmp_path).stdout)
    rows = {r["strategy"]: r for r in acc["models"]}
    assert rows["ml_multifactor"]["n"] > 0 and 0 <= rows["ml_multifactor"]["hit_rate"] <= 1
