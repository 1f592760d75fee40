"""The command line as scripts call it: a real subprocess, real files, a real database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from tests_cli_helpers import FIXTURES, alphaloop

GOOG = FIXTURES / "GOOG_daily.csv"


def stored_runs(home: Path) -> int:
    db = home / "alphaloop.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return con.execute("select count(*) from backtest_runs").fetchone()[0]


def test_backtest_json_contract_and_stored_run(tmp_path):
    out = alphaloop("backtest", "--data", str(GOOG), "--strategy", "sma_cross", "--param", "fast=10",
                    "--param", "slow=20", "--cash", "10000", "--commission", "0.002", "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)  # stdout is exactly one JSON object
    for key in ("final_equity", "return_pct", "max_drawdown_pct", "sharpe", "n_trades", "trades",
                "fingerprint", "run_id"):
        assert key in doc
    assert doc["n_trades"] == len(doc["trades"]) > 50
    t = doc["trades"][0]
    assert set(t) >= {"entry_bar", "exit_bar", "size", "entry_price", "exit_price", "pnl"}
    # entry at the next bar's open: the row of the data file, 0-based
    lines = GOOG.read_text().splitlines()
    assert float(lines[1 + t["entry_bar"]].split(",")[1]) == t["entry_price"]
    assert doc["return_pct"] == pytest.approx((doc["final_equity"] / 10_000 - 1) * 100)
    # the run is in the database and reads back identically
    shown = alphaloop("runs", "show", doc["run_id"], "--json", home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    back = json.loads(shown.stdout)
    assert back["fingerprint"] == doc["fingerprint"] and back["trades"] == doc["trades"]


def test_backtest_prints_a_stats_table(tmp_path):
    out = alphaloop("backtest", "--data", str(GOOG), "--param", "fast=10", "--param", "slow=20",
                    "--commission", "0.002", "--no-store", home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Final equity" in out.stdout and "Sharpe" in out.stdout and "Max drawdown [%]" in out.stdout
    assert stored_runs(tmp_path) == 0


USER_STRATEGY = '''
from alphaloop.strategy import Strategy

class BuyAndHold(Strategy):
    name = "buy_and_hold"
    params = {"units": 5}

    def on_bar(self, ctx):
        if ctx.i == 0:
            ctx.buy(self.units)
'''


def test_user_strategy_from_a_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(USER_STRATEGY)
    out = alphaloop("backtest", "--data", str(GOOG), "--strategy", f"{path}:BuyAndHold", "--param", "units=3",
                    "--json", "--no-store", home=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    rows = [r.split(",") for r in GOOG.read_text().splitlines()[1:]]
    entry, exit_ = float(rows[1][1]), float(rows[-1][1])  # bar 1 open, closed at the last bar's open
    assert doc["trades"] == [pytest.approx({**doc["trades"][0], "size": 3.0, "entry_bar": 1,
                                            "exit_bar": len(rows) - 1, "entry_price": entry,
                                            "exit_price": exit_, "pnl": 3 * (exit_ - entry)})]


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("content,needle", [
    ("time,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,,10\n", "line 3"),
    ("time,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,10\n2024-01-01,1,2,0.5,1.5,10\n", "line 3"),
    ("time,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,10\nnot-a-date,1,2,0.5,1.5,10\n", "line 3"),
    ("time,open,high,low,close,volume\n2024-01-01,1,0.4,0.5,1.5,10\n", "line 2"),
    ("date,price\n2024-01-01,1\n", "close"),
    ("", "empty"),
])
def test_bad_data_is_a_clear_error_and_nothing_is_stored(tmp_path, content, needle):
    path = write(tmp_path, "bad.csv", content)
    out = alphaloop("backtest", "--data", str(path), home=tmp_path)
    assert out.returncode == 4
    assert out.stdout == ""
    line = out.stderr.strip()
    assert "\n" not in line and "bad.csv" in line and needle in line.lower()
    assert stored_runs(tmp_path) == 0


@pytest.mark.parametrize("args,code,needle", [
    (["--strategy", "nope"], 5, "unknown strategy 'nope'"),
    (["--param", "fats=3"], 5, "unknown parameter"),
    (["--param", "fast=ten"], 5, "parameter 'fast' expects int"),
    (["--param", "fast=30", "--param", "slow=10"], 5, "fast < slow"),
    (["--param", "fast"], 2, "NAME=VALUE"),
    (["--strategy", "missing.py:X"], 5, "not found"),
    (["--data", "no/such/file.csv"], 4, "no/such/file.csv"),
    (["--commission", "0.5"], 3, "commission"),
])
def test_bad_arguments(tmp_path, args, code, needle):
    base = [] if "--data" in args else ["--data", str(GOOG)]
    out = alphaloop("backtest", *base, *args, home=tmp_path)
    assert out.returncode == code, out.stderr
    assert needle in out.stderr
    assert stored_runs(tmp_path) == 0


def test_unreachable_database_fails_cleanly(tmp_path):
    out = alphaloop("backtest", "--data", str(GOOG), "--json", home=tmp_path,
                    env={"ALPHALOOP_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"})
    assert out.returncode == 7
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "127.0.0.1:1" in out.stderr


FAILING_STRATEGY = '''
from alphaloop.strategy import Strategy

class Broken(Strategy):
    name = "broken"

    def on_bar(self, ctx):
        if ctx.i == 3:
            ctx.buy(1)
        if ctx.i == 100:
            raise RuntimeError("boom")
'''


def test_a_strategy_crash_mid_run_writes_nothing(tmp_path):
    path = write(tmp_path, "broken.py", FAILING_STRATEGY)
    out = alphaloop("backtest", "--data", str(GOOG), "--strategy", f"{path}:Broken", home=tmp_path)
    assert out.returncode == 5
    assert "bar 100" in out.stderr and "boom" in out.stderr
    assert stored_runs(tmp_path) == 0


def test_config_show_names_the_source_of_each_value(tmp_path):
    cfg = write(tmp_path, "cfg.yaml", "max_position_size: 250\ncommission: 0.001\n")
    out = alphaloop("--config", str(cfg), "config", "show", "--json", home=tmp_path,
                    env={"MIN_SIGNAL_THRESHOLD": "0.45", "ONNX_RUNNER_URL": "localhost:50051"})
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["min_signal_threshold"] == {"value": 0.45, "source": "env MIN_SIGNAL_THRESHOLD",
                                           "env": "MIN_SIGNAL_THRESHOLD"}
    assert doc["onnx_runner_url"]["value"] == "localhost:50051"
    assert doc["max_position_size"]["value"] == 250 and doc["max_position_size"]["source"] == f"file {cfg}"
    assert doc["home"] == {"value": str(tmp_path), "source": "env ALPHALOOP_HOME", "env": "ALPHALOOP_HOME"}
    assert doc["database_url"]["value"] == f"sqlite:///{tmp_path / 'alphaloop.db'}"
    assert doc["initial_cash"] == {"value": 10000.0, "source": "default", "env": "ALPHALOOP_INITIAL_CASH"}


def test_config_show_hides_the_service_token_and_keeps_services_on_loopback(tmp_path):
    out = alphaloop("config", "show", "--json", home=tmp_path, env={"ALPHALOOP_SERVICE_TOKEN": "s3cret-value"})
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert "s3cret-value" not in out.stdout
    assert doc["service_token"]["value"] == "***"
    assert doc["service_host"] == {"value": "127.0.0.1", "source": "default", "env": "ALPHALOOP_SERVICE_HOST"}


@pytest.mark.parametrize("content,env,needle", [
    ("colour: blue\n", {}, "unknown setting(s) colour"),
    ("max_position_size: -3\n", {}, "max_position_size"),
    (": : :\n", {}, "not valid YAML"),
    ("", {"MIN_SIGNAL_THRESHOLD": "2"}, "MIN_SIGNAL_THRESHOLD"),
    ("max_body_bytes: 10\n", {}, "max_body_bytes"),
])
def test_bad_configuration(tmp_path, content, env, needle):
    cfg = write(tmp_path, "cfg.yaml", content)
    out = alphaloop("--config", str(cfg), "config", "show", home=tmp_path, env=env)
    assert out.returncode == 3
    assert needle in out.stderr


def test_help_for_every_command(tmp_path):
    for cmd in (["backtest"], ["config", "show"], ["data", "validate"], ["data", "generate"], ["runs", "list"],
                ["demo"], ["strategies"]):
        out = alphaloop(*cmd, "--help", home=tmp_path)
        assert out.returncode == 0 and "Usage:" in out.stdout
