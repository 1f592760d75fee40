"""ML service speed on loopback: gRPC ``GetPrediction`` p50/p99 and ``BatchPredict`` rows/s (and HTTP
``/predict`` for comparison) against the same model run in-process by ``InferenceRuntime``.

The model: LightGBM regression (``bars_v1``, 22 features, the trainer's defaults: 200 trees) trained
here on the GOOG sample and exported to ONNX. The service runs in its own process
(``python -m alphaloop.services.ml``), so client and server do not share a GIL. Every request uses a
fresh instrument name so the service's prediction cache never answers (a cached answer is measured
separately).

Run: .venv/bin/python benchmarks/bench_ml_service.py   (about 30 seconds)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from alphaloop.core.config import load_settings
from alphaloop.data import load_bars
from alphaloop.ml.export import export_model
from alphaloop.ml.features import make_features
from alphaloop.ml.registry import CHAMPION
from alphaloop.ml.runtime import InferenceRuntime
from alphaloop.ml.training import train_model
from alphaloop.services.ml.client import MLGrpcClient, MLHttpClient
from alphaloop.store import SqlModelRepository, Store

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "market" / "GOOG_daily.csv"
SINGLE_CALLS = 3000
BATCH_ROWS = 1024
BATCHES = 60


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def pcts(samples_s: list[float]) -> tuple[float, float]:
    a = np.asarray(samples_s) * 1e6
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def single_latency(fn, rows: np.ndarray, n: int) -> tuple[float, float]:
    for i in range(200):  # warm-up (connections, kernels)
        fn(rows[i % len(rows)], f"warm{i}")
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(rows[i % len(rows)], f"i{i}")
        out.append(time.perf_counter() - t0)
    return pcts(out)


def batch_throughput(fn, rows: np.ndarray, n: int) -> float:
    fn(rows, "warm")
    t0 = time.perf_counter()
    for i in range(n):
        fn(rows, f"b{i}")
    return n * len(rows) / (time.perf_counter() - t0)


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="alphaloop-bench-ml-"))
    bars = load_bars(DATA, instrument="GOOG")
    artifact = export_model(train_model(bars, model="lightgbm", task="regression", horizon=5), "bench-goog")
    settings = load_settings(env={"ALPHALOOP_HOME": str(home)})
    settings.ensure_dirs()
    with Store.from_settings(settings) as store:
        registry = SqlModelRepository(store).registry(settings.models_dir)
        registered = registry.register(artifact, alias=CHAMPION)
    x = make_features(bars).dropna().to_numpy()
    rows = x[-BATCH_ROWS:]

    http_port, grpc_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHALOOP_")}
    env.update(ALPHALOOP_HOME=str(home), ALPHALOOP_LOG_LEVEL="warning")
    proc = subprocess.Popen([sys.executable, "-m", "alphaloop.services.ml", "--model", "bench-goog",
                             "--http-port", str(http_port), "--grpc-port", str(grpc_port)], env=env)
    try:
        grpc_client = MLGrpcClient(f"127.0.0.1:{grpc_port}", timeout_s=5.0)
        deadline = time.monotonic() + 60
        while True:
            try:
                if grpc_client.health() == "SERVING":
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the ML service did not start")
            time.sleep(0.1)
        http_client = MLHttpClient(f"http://127.0.0.1:{http_port}", timeout_s=5.0)
        runtime = InferenceRuntime(registry_artifact(settings, registered.version), ("cpu",))

        print(f"model: LightGBM regression, {len(artifact.schema.columns)} features, 200 trees; "
              f"onnxruntime CPU; {os.cpu_count()} cores")
        results = {
            "in-process InferenceRuntime.predict": single_latency(
                lambda r, inst: runtime.predict(r.reshape(1, -1)), rows, SINGLE_CALLS),
            "gRPC GetPrediction (loopback, separate process)": single_latency(
                lambda r, inst: grpc_client.predict(r, instrument=inst), rows, SINGLE_CALLS),
            "gRPC GetPrediction, server cache hit": single_latency(
                lambda r, inst: grpc_client.predict(rows[0], instrument="same"), rows, SINGLE_CALLS),
            "HTTP POST /predict (loopback, separate process)": single_latency(
                lambda r, inst: http_client.predict(r, instrument=inst), rows, SINGLE_CALLS // 3),
        }
        print(f"\n{'single-row latency':<52} {'p50 us':>9} {'p99 us':>9}")
        for name, (p50, p99) in results.items():
            print(f"{name:<52} {p50:>9.0f} {p99:>9.0f}")

        x32 = rows.astype(np.float32)
        batches = {
            "in-process InferenceRuntime.predict_batch": batch_throughput(
                lambda r, inst: runtime.predict_batch(x32), rows, BATCHES),
            "gRPC BatchPredict": batch_throughput(
                lambda r, inst: grpc_client.predict_batch(r, instruments=inst), rows, BATCHES),
            "HTTP POST /predict/batch": batch_throughput(
                lambda r, inst: http_client.predict_batch(r, instruments=inst), rows, BATCHES // 3),
        }
        print(f"\n{f'batches of {BATCH_ROWS} rows':<52} {'rows/s':>12}")
        for name, rate in batches.items():
            print(f"{name:<52} {rate:>12,.0f}")
        grpc_client.close()
        http_client.close()
    finally:
        proc.terminate()
        proc.wait(20)


def registry_artifact(settings, version: int):
    with Store.from_settings(settings) as store:
        return SqlModelRepository(store).registry(settings.models_dir).load("bench-goog", version=version)


if __name__ == "__main__":
    main()
