"""`alphaloop discover`, `alphaloop discovery ...` and `alphaloop ml status`, run as the real program."""

from __future__ import annotations

import json

import pandas as pd
from tests_cli_helpers import FIXTURES, alphaloop

GOOG = str(FIXTURES / "GOOG_daily.csv")
BTC = str(FIXTURES / "BTC-USD_daily.csv")
RUN = ("discover", "--data", GOOG, "--data", BTC, "--trials", "30", "--batch", "5", "--seed", "3")


def comparable(report: dict) -> dict:
    d = {k: v for k, v in report.items() if k not in ("seconds", "candidates_per_minute", "executor")}
    d["steps"] = [{"name": s["name"], "counts": {k: v for k, v in s["counts"].items() if k != "jobs"}}
                  for s in report["steps"]]
    d["model"] = {"available": report["model"]["available"]}
    return d


def test_discover_json_end_to_end_then_rank_and_status(tmp_path):
    r = alphaloop(*RUN, "--executor", "local", "--workers", "2", "--json", home=tmp_path / "local")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)  # exactly one JSON object on stdout
    assert [s["name"] for s in report["steps"]] == ["submit_feedback", "retrain", "generate", "evaluate_activate",
                                                    "deactivate", "rank_report"]
    assert report["executor"] == "local" and report["candidates_tried"] == 30
    assert report["candidates_per_minute"] > 0 and report["model"]["available"]
    assert len(report["strategies"]) == 30
    for s in report["strategies"]:
        assert set(s) >= {"spec", "ml_confidence", "backtest_score", "composite_score", "status"}
        assert s["status"] in ("active", "inactive", "candidate")
        assert s["composite_score"] == (s["ml_confidence"] + s["backtest_score"]) / 2
    assert {"dsr", "pbo", "n_trials"} <= set(report["study"])

    # the same seed on a Dask LocalCluster gives the same report
    d = alphaloop(*RUN, "--executor", "dask", "--workers", "2", "--json", home=tmp_path / "dask")
    assert d.returncode == 0, d.stderr
    assert comparable(json.loads(d.stdout)) == comparable(report)

    ranked = alphaloop("discovery", "rank", "--limit", "50", "--json", home=tmp_path / "local")
    assert ranked.returncode == 0, ranked.stderr
    rows = json.loads(ranked.stdout)["strategies"]
    assert len(rows) == 30
    by_spec = {json.dumps(s["spec"], sort_keys=True): s for s in report["strategies"]}
    for row in rows:
        s = by_spec[json.dumps(row["spec"], sort_keys=True)]
        assert row["composite_score"] == s["composite_score"] and row["status"] == s["status"]
    composites = [row["composite_score"] for row in rows]
    assert composites == sorted(composites, reverse=True)

    status = alphaloop("ml", "status", "--json", home=tmp_path / "local")
    assert status.returncode == 0, status.stderr
    st = json.loads(status.stdout)
    assert st["health"] == "ok" and st["evaluation_model"]["families"] == ["sma_cross"]
    # 20 bootstrap candidates + 10 generated, on 2 instruments each
    assert st["feedback"]["records"] == 60
    assert any(m["aliases"].get("champion") for m in st["models"])
    human = alphaloop("ml", "status", home=tmp_path / "local")
    assert human.returncode == 0 and "evaluation model: strategy-evaluator" in human.stdout

    # deactivate by hand: an audit row with the reason
    sid = rows[0]["id"]
    assert alphaloop("discovery", "deactivate", sid, "--reason", "test", home=tmp_path / "local").returncode == 0
    hist = json.loads(alphaloop("discovery", "history", sid, "--json", home=tmp_path / "local").stdout)["events"]
    assert hist[-1]["to"] == "inactive" and hist[-1]["reason"] == "manual: test"


def test_discover_human_report(tmp_path):
    r = alphaloop("discover", "--data", GOOG, "--trials", "8", "--bootstrap", "8", "--executor", "serial",
                  home=tmp_path)
    assert r.returncode == 0, r.stderr
    for text in ("Discovery (serial executor, seed 0)", "evaluate_activate", "Study:", "Ranking:", "PBO"):
        assert text in r.stdout


def test_evaluate_and_compare(tmp_path):
    r = alphaloop("discovery", "evaluate", "--data", GOOG, "--strategy", "sma_cross:fast=10,slow=40",
                  "--strategy", "sma_cross:fast=20,slow=80", "--json", home=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [s["spec"]["params"] for s in out["strategies"]] == [{"fast": 10, "slow": 40}, {"fast": 20, "slow": 80}]
    assert all(s["ml_confidence"] is None for s in out["strategies"])  # no model trained in this home
    assert all(0 <= s["backtest_score"] <= 1 and s["n_trials"] == 2 for s in out["strategies"])


def test_bad_input_exit_codes(tmp_path):
    short = tmp_path / "SHORT.csv"
    bars = pd.read_csv(GOOG).iloc[:100]
    bars.to_csv(short, index=False)
    r = alphaloop("discover", "--data", str(short), "--executor", "serial", home=tmp_path)
    assert r.returncode == 10 and "100 bars are too few" in r.stderr and "SHORT" in r.stderr

    r = alphaloop(*RUN, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1", home=tmp_path)
    assert r.returncode == 10 and "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in r.stderr

    r = alphaloop("discover", "--data", GOOG, "--family", "nope", home=tmp_path)
    assert r.returncode == 10 and "no search space for strategy family 'nope'" in r.stderr

    r = alphaloop("discover", "--data", str(tmp_path / "missing.csv"), home=tmp_path)
    assert r.returncode == 4 and "missing.csv" in r.stderr

    r = alphaloop("discover", "--data", GOOG, "--scheduler", "tcp://x:1", home=tmp_path)
    assert r.returncode == 2 and "--scheduler goes with --executor dask" in r.stderr

    r = alphaloop("discovery", "deactivate", "strat_nope", "--reason", "x", home=tmp_path)
    assert r.returncode == 7 and "unknown strategy id 'strat_nope'" in r.stderr


def test_stored_backtests_are_fed_back_and_a_second_run_resumes_the_study(tmp_path):
    b = alphaloop("backtest", "--data", GOOG, "--strategy", "sma_cross", "--json", home=tmp_path)
    assert b.returncode == 0, b.stderr
    args = ("discover", "--data", GOOG, "--trials", "8", "--bootstrap", "8", "--executor", "serial", "--json")
    first = json.loads(alphaloop(*args, home=tmp_path).stdout)
    step1 = first["steps"][0]["counts"]
    assert step1["stored_runs"] == 1 and step1["stored_accepted"] == 1 and step1["stored_marked_processed"] == 1
    assert first["study"]["studies"]["sma_cross"]["backtested"] == 8
    second = json.loads(alphaloop(*args, home=tmp_path).stdout)
    assert second["steps"][0]["counts"]["stored_runs"] == 0  # already fed back
    study = second["study"]["studies"]["sma_cross"]
    assert study["name"] == first["study"]["studies"]["sma_cross"]["name"] and study["backtested"] == 16
    assert second["study"]["n_trials"] == 16  # the DSR counts the trials of both runs
