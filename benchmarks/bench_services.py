"""The pipeline through Redis Streams with every engine in its own process (`alphaloop serve NAME`):
sustained bars per second with no growth of pending entries, and bar-to-order latency at 1,000 bars/s.

1. Throughput: the synthetic stream as fast as possible (``--bars`` steps, sma_cross): bars per second
   from the first bar on the bars stream to the run's last marker on the orders stream.
2. Sustained: the same at a paced rate (default: 80% of the measured throughput, or ``--sustain``);
   the strategy engine's consumer-group lag and pending entries are sampled every 0.25 s and must
   stay bounded (the last quarter's maximum no higher than the first quarter's + a small slack).
3. Latency at ``--rate`` (1,000) bars/s (and at the sustained rate of 2.): for every order, the time from the bar's publication
   (the bar envelope's stamp, set as market-data publishes it) to the order's (stamped as the engine
   sends it; it reaches the stream in the same step). p50 / p99 / max. When the pipeline cannot
   keep up with the rate, this latency is mostly the queue in front of the strategy engine.

Needs Redis (``ALPHALOOP_REDIS_URL``, default 127.0.0.1:6379); records in ``ALPHALOOP_DATABASE_URL``
or a temporary SQLite file.

    python benchmarks/bench_services.py [--bars 5000] [--rate 1000] [--sustain BARS_PER_S]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import redis

SERVICES = ("execution", "strategy", "patterns", "market-data")
PARAMS = {"fast": 3, "slow": 8}  # crosses often: many orders to time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


class Deployment:
    def __init__(self, bars: int, speed: float, home: Path, env: dict[str, str]):
        self.run_id = f"bench-{uuid.uuid4().hex[:8]}"
        self.ports = {s: free_port() for s in SERVICES}
        args = ["--run-id", self.run_id, "--synthetic", "--instrument", "BENCH", "--bars", str(bars),
                "--speed", str(speed), "--strategy", "sma_cross", "--params", json.dumps(PARAMS)]
        self.procs = []
        for name in SERVICES:
            argv = [sys.executable, "-m", "alphaloop", "serve", name, "--port", str(self.ports[name]), *args]
            if name == "market-data":
                argv.append("--paused")  # every consumer ready before the first bar
            log = open(home / f"{self.run_id}-{name}.log", "w")  # noqa: SIM115
            self.procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=log))
            self.wait(lambda n=name: get_json(f"{self.url(n)}/health")["status"] == "ok", f"{name} ready")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def wait(self, check, what: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"timed out waiting for {what}")

    def go(self) -> None:
        req = urllib.request.Request(f"{self.url('market-data')}/replay", data=b'{"paused": false}',
                                     headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self, r: redis.Redis) -> None:
        for p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        keys = list(r.scan_iter(match=f"alphaloop:{self.run_id}:*"))
        if keys:
            r.delete(*keys)


def entries(r: redis.Redis, key: str) -> list[tuple[int, dict]]:
    """(entry ms, envelope fields) of a whole stream."""
    out = []
    for eid, fields in r.xrange(key):
        out.append((int(eid.split(b"-")[0]), {k.decode(): v.decode() for k, v in fields.items()}))
    return out


def run_once(bars: int, speed: float, home: Path, env: dict[str, str], r: redis.Redis, sample: bool) -> dict:
    d = Deployment(bars, speed, home, env)
    try:
        samples: list[tuple[int, int]] = []
        d.go()
        key = f"alphaloop:{d.run_id}:signals"

        def finished() -> bool:
            if sample:
                for g in r.xinfo_groups(key):
                    if g["name"] in (b"strategy-engine", "strategy-engine"):
                        samples.append((int(g.get("lag") or 0), int(g["pending"])))
            return bool(get_json(f"{d.url('strategy')}/stats").get("finished"))

        d.wait(finished, "the run to finish")
        bars_stream = entries(r, f"alphaloop:{d.run_id}:bars")
        orders_stream = entries(r, f"alphaloop:{d.run_id}:orders")
        t0, t1 = bars_stream[0][0], orders_stream[-1][0]
        published = {}  # bar time -> bar envelope stamp
        for _, f in bars_stream:
            if f["kind"] == "bar":
                published[json.loads(f["payload"])["time_ns"]] = int(f["ts_ns"])
        latencies = []
        for _, f in orders_stream:
            if f["kind"] == "order":
                p = json.loads(f["payload"])
                latencies.append((int(f["ts_ns"]) - published[p["created_ns"]]) / 1e6)
        stats = get_json(f"{d.url('strategy')}/stats")
        return {"bars": stats["bars"], "orders": stats["orders_sent"], "wall_s": (t1 - t0) / 1000,
                "bars_per_s": stats["bars"] / max((t1 - t0) / 1000, 1e-9), "latency_ms": latencies,
                "samples": samples}
    finally:
        d.stop(r)


def bounded(samples: list[tuple[int, int]], slack: int = 50) -> tuple[bool, int, int]:
    """Lag + pending does not grow: the last quarter's maximum <= the first quarter's + slack."""
    if len(samples) < 8:
        return True, 0, 0
    q = len(samples) // 4
    first = max(lag + pend for lag, pend in samples[:q])
    last = max(lag + pend for lag, pend in samples[-q:])
    return last <= first + slack, first, last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=1000.0, help="bars per second for the latency run")
    ap.add_argument("--sustain", type=float, default=None, help="paced rate to check (default: 80%% of max)")
    a = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="alphaloop-bench-services-"))
    env = dict(os.environ)
    env.setdefault("ALPHALOOP_HOME", str(home))
    env.setdefault("ALPHALOOP_DATABASE_URL", f"sqlite:///{home / 'bench.db'}")
    env.setdefault("ALPHALOOP_LOG_LEVEL", "warning")
    r = redis.Redis.from_url(env.get("ALPHALOOP_REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        top = run_once(a.bars, 0.0, home, env, r, sample=False)
        print(f"throughput (as fast as possible, {top['bars']} bars, {top['orders']} orders): "
              f"{top['bars_per_s']:,.0f} bars/s ({top['wall_s']:.2f} s)")
        rate = a.sustain or round(0.8 * top["bars_per_s"])
        sus = run_once(min(a.bars, int(rate * 10)), rate, home, env, r, sample=True)
        ok, first, last = bounded(sus["samples"])
        sms = np.array(sus["latency_ms"])
        print(f"sustained at {rate:,.0f} bars/s: {sus['bars_per_s']:,.0f} bars/s achieved; lag+pending of the "
              f"strategy engine first quarter max {first}, last quarter max {last}: "
              f"{'no growth' if ok else 'GROWING'}; bar-to-order p50 {np.percentile(sms, 50):.2f} ms, "
              f"p99 {np.percentile(sms, 99):.2f} ms")
        lat = run_once(min(a.bars, int(a.rate * 5)), a.rate, home, env, r, sample=True)
        ms = np.array(lat["latency_ms"])
        keeps_up = lat["bars_per_s"] >= 0.95 * a.rate
        print(f"bar-to-order latency at {a.rate:,.0f} bars/s ({lat['bars_per_s']:,.0f} achieved: "
              f"{'keeps up' if keeps_up else 'cannot keep up, the latency is mostly queueing'}; {len(ms)} orders): "
              f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, max {ms.max():.2f} ms")
    finally:
        r.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
