"""`alphaloop serve all` end to end: every service its own process, joined by the real Redis, recording
in the real PostgreSQL; a replay of GOOG with sma_cross must store exactly the orders and fills of the
embedded run of the same file (which equals the backtest: tests/live), every service must answer
/health and /metrics, and SIGTERM must stop them all with exit 0."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest
from pipeline_helpers import (
    ML_PARAMS,
    Pipeline,
    Proc,
    delete_streams,
    embedded_run,
    free_port_offset,
    get,
    listening,
    new_run_id,
    redis_up,
    run_args,
    run_finished,
    service_env,
    stored_run,
    wait_for,
)

pytestmark = pytest.mark.skipif(not redis_up(), reason="no Redis server at 127.0.0.1:6379")


def _metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_serve_all_replays_a_file_into_the_orders_and_fills_of_the_embedded_run(tmp_path, postgres_url):
    run_id = new_run_id("e2e")
    env = service_env(tmp_path / "home", postgres_url)
    offset = free_port_offset()
    sup = Proc(["serve", "all", "--port-offset", str(offset), *run_args(run_id)], env, tmp_path / "logs", "all")
    try:
        urls = wait_for("serve all to report every service ready", lambda: "all services ready" in sup.out()
                        and listening(sup.out()), procs=(sup,))
        assert {"market-data", "patterns", "strategy", "execution"} <= set(urls)
        assert urls["strategy"].endswith(f":{8005 + offset}") and urls["market-data"].endswith(f":{9000 + offset}")
        stats = wait_for("the run to finish", lambda: run_finished(urls["strategy"]), procs=(sup,))
        assert stats["ended"] == "end_of_data" and stats["errors"] == 0 and stats["bars"] == 2148

        embedded = embedded_run(postgres_url, f"{run_id}-embedded")
        served, reference = stored_run(postgres_url, run_id), stored_run(postgres_url, f"{run_id}-embedded")
        assert len(reference["orders"]) == embedded.orders + 1  # + the broker's end-of-data close
        assert len(reference["fills"]) == embedded.fills
        assert served["orders"] == reference["orders"]
        assert served["fills"] == reference["fills"]
        assert len(set(served["order_ids"])) == len(served["order_ids"])
        assert stats["equity"] == embedded.final_equity  # the engine's account, to the last bit
        positions = get(f"{urls['execution']}/positions").json()
        assert positions["equity"] == embedded.final_equity  # and the broker's

        for name, url in urls.items():  # every service: health and Prometheus metrics
            health = get(f"{url}/health")
            assert health.status_code == 200, (name, health.text)
            assert health.json()["service"] == name
            metrics = get(f"{url}/metrics")
            assert metrics.status_code == 200 and "alphaloop_up" in metrics.text, name
        strategy_metrics = get(f"{urls['strategy']}/metrics").text
        assert _metric(strategy_metrics, "alphaloop_messages_total", service="strategy", kind="orders") == embedded.orders
        assert _metric(strategy_metrics, "alphaloop_messages_total", service="strategy", kind="fills") == embedded.fills
        assert _metric(strategy_metrics, "alphaloop_bus_pending", service="strategy",
                       stream=f"{run_id}:signals") == 0.0
        assert "database" in get(f"{urls['strategy']}/health").json()["checks"]
        assert get(f"{urls['market-data']}/replay").json()["steps_published"] == 2148

        code = sup.stop(signal.SIGTERM, timeout=90)
        assert code == 0, sup.err()[-3000:]
        for pid in [int(p) for p in re.findall(r"\(pid (\d+)\)", sup.out())]:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # every child is gone
    finally:
        sup.stop(signal.SIGTERM)  # the supervisor stops its services (no-op when it has exited)
        delete_streams(run_id)


def test_three_instruments_on_different_clocks_give_the_embedded_runs_decisions_orders_and_fills(
        tmp_path, postgres_url):
    """One instrument sparser and ending early (it settles mid-run), one starting late: steps of one,
    two and three bars; ml_multifactor (on_fill, stop-losses): one broker action per turn."""
    from alphaloop.data import load_sample

    frames = {"SYNTH_A": load_sample("SYNTH_A").iloc[:700], "SYNTH_B": load_sample("SYNTH_B").iloc[::2].iloc[:250],
              "SYNTH_C": load_sample("SYNTH_C").iloc[150:800]}
    files = []
    for name, df in frames.items():
        files.append(tmp_path / f"{name}.csv")
        df.to_csv(files[-1])
    run_id = new_run_id("e2e-multi")
    args = run_args(run_id, strategy="ml_multifactor", params=json.dumps(ML_PARAMS), data=files)
    pipe = Pipeline(tmp_path, service_env(tmp_path / "home", postgres_url), args)
    try:
        pipe.start_all()
        stats = pipe.finished()
        assert stats["ended"] == "end_of_data" and stats["instruments"] == list(frames)
        embedded = embedded_run(postgres_url, f"{run_id}-embedded", strategy="ml_multifactor", params=ML_PARAMS,
                                data=files)
        served, reference = stored_run(postgres_url, run_id), stored_run(postgres_url, f"{run_id}-embedded")
        assert embedded.decisions > 20 and embedded.fills > 10 and len(served["decisions"]) == embedded.decisions
        assert served["decisions"] == reference["decisions"]
        assert served["orders"] == reference["orders"]
        assert served["fills"] == reference["fills"]
        assert {f[2] for f in served["fills"]} == set(frames)  # every instrument traded
        assert stats["equity"] == embedded.final_equity and stats["bars"] == embedded.bars
        assert set(pipe.stop_all().values()) == {0}
    finally:
        pipe.kill_all()
        delete_streams(run_id)
