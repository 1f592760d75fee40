"""Shared by the pipeline service tests: real `alphaloop serve` processes on free loopback ports,
real Redis (a unique run id = a unique stream prefix per test) and real PostgreSQL, and the embedded
run the services must reproduce."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis
from service_test_helpers import free_port

from alphaloop.services.topology import SERVICES

ROOT = Path(__file__).resolve().parents[2]
GOOG = ROOT / "tests" / "fixtures" / "market" / "GOOG_daily.csv"
REDIS_URL = "redis://127.0.0.1:6379/0"
ML_PARAMS = {"threshold": 0.3, "max_position_size": 1000}


def redis_up(url: str = REDIS_URL) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def new_run_id(tag: str) -> str:
    return f"test-{tag}-{uuid.uuid4().hex[:10]}"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_offset() -> int:
    """An offset that puts every service's HTTP and gRPC port on a free port (below 65536)."""
    ports = [p for s in SERVICES.values() for p in (s.http_port, s.grpc_port) if p is not None]
    for _ in range(200):
        offset = int.from_bytes(os.urandom(2), "big") % 14000 + 1000
        if all(_free(p + offset) for p in ports):
            return offset
    raise RuntimeError("no free port offset found")


def service_env(home: Path, database_url: str, redis_url: str = REDIS_URL) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHALOOP_")}
    env.update({"ALPHALOOP_HOME": str(home), "ALPHALOOP_DATABASE_URL": database_url,
                "ALPHALOOP_REDIS_URL": redis_url, "ALPHALOOP_LOG_LEVEL": "info"})
    return env


def run_args(run_id: str, *, strategy: str = "sma_cross", params: str = "{}", speed: float = 0.0,
             data: Path | list[Path] = GOOG, bars: int | None = None) -> list[str]:
    files = [str(p) for p in (data if isinstance(data, list) else [data])]
    return ["--run-id", run_id, *[a for f in files for a in ("--data", f)], "--strategy", strategy, "--params", params,
            "--speed", str(speed), "--cash", "10000", "--commission", "0", *(["--bars", str(bars)] if bars else [])]


def alphaloop(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real program to completion."""
    return subprocess.run([sys.executable, "-m", "alphaloop", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


class Proc:
    """A real `python -m alphaloop ...` process with its output in files under ``logs``."""

    def __init__(self, args: list[str], env: dict[str, str], logs: Path, name: str):
        logs.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = logs / f"{name}.out", logs / f"{name}.err"
        self._out, self._err = open(self.out_path, "w"), open(self.err_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "alphaloop", *args], env=env, stdout=self._out,
                                     stderr=self._err, cwd=ROOT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def out(self) -> str:
        return self.out_path.read_text()

    def err(self) -> str:
        return self.err_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()
            self._err.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._out.close()
        self._err.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120, every: float = 0.1,
             procs: tuple[Proc, ...] = ()) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (and a dead process)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        for p in procs:
            if p.proc.poll() is not None:
                raise AssertionError(f"{what}: process exited with {p.proc.returncode}\n{p.out()}\n{p.err()[-4000:]}")
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, OSError, ValueError) as e:
            last_error = e
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})")


def get(url: str, **kw: Any) -> httpx.Response:
    return httpx.get(url, timeout=10, **kw)


def listening(out: str) -> dict[str, str]:
    """Service name -> base URL, from `serve all`'s lines "NAME  http://HOST:PORT  (pid N)"."""
    return dict(re.findall(r"^(\S+)\s+(http://\S+)\s+\(pid", out, flags=re.M))


def run_finished(base_url: str) -> dict[str, Any] | None:
    stats = get(f"{base_url}/stats").json()
    return stats if stats.get("finished") else None


def delete_streams(run_id: str, url: str = REDIS_URL) -> None:
    r = redis.Redis.from_url(url)
    keys = list(r.scan_iter(match=f"alphaloop:{run_id}:*"))
    if keys:
        r.delete(*keys)
    r.close()


# ---- the embedded run the services must reproduce ---------------------------------------------
def embedded_run(database_url: str, run_id: str, *, strategy: str = "sma_cross", params: dict | None = None,
                 data: Path | list[Path] = GOOG, bars: int | None = None) -> Any:
    """EmbeddedRunner (what `alphaloop run` runs) over the same file and settings, recorded with
    its own run id in the same database; returns its summary."""
    from alphaloop.cli.wiring import build_services
    from alphaloop.core.config import load_settings
    from alphaloop.execution import BrokerConfig, Commission
    from alphaloop.live import EmbeddedRunner
    from alphaloop.store import LiveRepository, Store
    from alphaloop.strategy import load_strategy

    # what `serve strategy` builds from its settings: no model, no news, no remote engines
    settings = load_settings(env={"ALPHALOOP_HOME": str(Path(tempfile.mkdtemp(prefix="alphaloop-embedded-")))})
    services, _ = build_services(settings, None, None, live=True)
    with Store(database_url) as store:
        sources = [str(p) for p in data] if isinstance(data, list) else str(data)
        runner = EmbeddedRunner(load_strategy(strategy, dict(params or {})), sources,
                                BrokerConfig(initial_cash=10_000, commission=Commission(rate=0.0)),
                                services=services, recorder=LiveRepository(store), run_id=run_id)
        try:
            return runner.run(max_bars=bars)
        finally:
            services.close()


_ORDER_KEYS = ("instrument", "decision_id", "size", "fraction", "close_position", "type", "limit", "stop", "sl",
               "tp", "tif", "tag", "parent_trade", "status", "reason", "created_bar", "created_time")
_FILL_KEYS = ("instrument", "bar", "time", "size", "price", "commission")


def _local(global_id: str, run_id: str) -> str:
    assert global_id.startswith(f"{run_id}:"), (global_id, run_id)
    return global_id[len(run_id) + 1:]


def stored_run(database_url: str, run_id: str) -> dict[str, Any]:
    """The run's orders, fills and decisions as stored, with the run id taken out of every id."""
    from alphaloop.store import LiveRepository, Store

    with Store(database_url) as store:
        repo = LiveRepository(store)
        orders = repo.orders(run_id)
        fills = repo.fills(run_id)
        decisions = repo.decisions(run_id)
    return {
        "orders": sorted((_local(o["id"], run_id), *(o[k] for k in _ORDER_KEYS)) for o in orders),
        "fills": sorted((_local(f["id"], run_id), _local(f["order_id"], run_id), *(f[k] for k in _FILL_KEYS))
                        for f in fills),
        "decisions": sorted((d["id"], d["instrument"], d["bar"], d["action"], d["score"], d["order_size"],
                             None if d["order_id"] is None else _local(d["order_id"], run_id)) for d in decisions),
        "order_ids": [o["id"] for o in orders],
    }


PIPELINE = ("execution", "strategy", "patterns", "market-data")


class Pipeline:
    """The four pipeline services, each started on its own with `alphaloop serve NAME`."""

    def __init__(self, tmp: Path, env: dict[str, str], args: list[str]):
        self.tmp, self.env, self.args = tmp, env, args
        self.ports = {name: free_port() for name in PIPELINE}
        self.procs: dict[str, Proc] = {}
        self.starts = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, name: str) -> Proc:
        self.starts += 1
        proc = Proc(["serve", name, "--port", str(self.ports[name]), *self.args], self.env, self.tmp / "logs",
                    f"{name}-{self.starts}")
        self.procs[name] = proc
        wait_for(f"{name} to answer /health/live",
                 lambda: get(f"{self.url(name)}/health/live").status_code == 200, procs=(proc,))
        return proc

    def start_all(self) -> None:
        for name in PIPELINE:
            self.start(name)

    def finished(self, timeout: float = 180) -> dict:
        return wait_for("the run to finish", lambda: run_finished(self.url("strategy")), timeout=timeout,
                        procs=tuple(self.procs.values()))

    def stop_all(self) -> dict[str, int]:
        return {name: p.stop(signal.SIGTERM) for name, p in reversed(self.procs.items())}

    def kill_all(self) -> None:
        for p in self.procs.values():
            p.kill()
