"""ML runtime speed: alphaloop's inference runtime, cache and micro-batcher against raw ONNX Runtime.

One LightGBM regressor (30 features, 100 trees, trained here on synthetic data, exported with
onnxmltools) serves every section:

1. raw ``InferenceSession.run`` vs ``InferenceRuntime.predict_batch`` at batch sizes 1, 64 and 1024
   (target: alphaloop's overhead under 10% at 1024). Timings interleave the two so drift hits both.
2. cache-hit latency of ``CachedRuntime.predict`` in-process (target: p50 under 10 us).
3. concurrent single-row requests from 8 threads, without and with micro-batching.

Run: .venv/bin/python benchmarks/bench_ml.py   (about 30 seconds)
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable

import lightgbm as lgb
import numpy as np
import onnxmltools
import onnxruntime as ort
from onnxmltools.convert.common.data_types import FloatTensorType

from alphaloop.ml.artifact import FeatureSchema, ModelArtifact
from alphaloop.ml.batching import MicroBatcher
from alphaloop.ml.cache import CachedRuntime, PredictionCache
from alphaloop.ml.runtime import InferenceRuntime

N_FEATURES = 30
N_TREES = 100
THREADS = 8
CONCURRENT_SECONDS = 2.0


def build_artifact() -> tuple[ModelArtifact, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(20_000, N_FEATURES)).astype(np.float32)
    y = 0.01 * x[:, 0] - 0.004 * x[:, 1] * x[:, 2] + 0.003 * np.tanh(x[:, 3]) + rng.normal(0, 0.005, len(x))
    model = lgb.LGBMRegressor(n_estimators=N_TREES, num_leaves=31, learning_rate=0.05, verbose=-1).fit(x, y)
    onx = onnxmltools.convert_lightgbm(model, initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
                                       target_opset=15)
    data = onx.SerializeToString()
    schema = FeatureSchema("bench", 1, tuple(f"f{i:02d}" for i in range(N_FEATURES)))
    art = ModelArtifact("bench-lgbm", 1, "regression", data, schema, horizon=1,
                        sha256=ModelArtifact.digest(data), metadata={"val_rmse": 0.005})
    return art, x


def pct(samples_ns: list[int] | np.ndarray, q: float) -> float:
    return float(np.percentile(samples_ns, q)) / 1e3  # -> microseconds


def interleaved(fns: list[Callable[[], object]], reps: int) -> list[float]:
    """Median microseconds per call of each fn, calls interleaved round-robin."""
    times: list[list[int]] = [[] for _ in fns]
    for fn in fns:  # warm-up
        for _ in range(5):
            fn()
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter_ns()
            fn()
            times[i].append(time.perf_counter_ns() - t0)
    return [statistics.median(t) / 1e3 for t in times]


def bench_batches(art: ModelArtifact, x: np.ndarray, runtime: InferenceRuntime) -> None:
    # The baseline is the runtime's own InferenceSession, called directly: same options and thread
    # pool, so the difference is alphaloop's wrapper alone (validation, output decoding, confidence,
    # the PredictionBatch). A second session would have its own spinning thread pool competing for
    # the same cores, which on a small machine swamps the difference being measured.
    session = runtime.session
    name = session.get_inputs()[0].name
    print("\n1. raw onnxruntime session.run vs alphaloop predict_batch (same session, median per call)")
    print(f"{'rows':>6} {'raw run us':>11} {'predict_batch us':>17} {'overhead':>9} "
          f"{'+ list(Prediction) us':>22}")
    for n in (1, 64, 1024):
        rows = np.ascontiguousarray(x[:n])
        reps = {1: 4000, 64: 2000, 1024: 400}[n]
        t_raw, t_ours = interleaved([lambda rows=rows: session.run(None, {name: rows}),
                                     lambda rows=rows: runtime.predict_batch(rows)], reps)
        t_list = interleaved([lambda rows=rows: list(runtime.predict_batch(rows))], reps // 4)[0]
        print(f"{n:>6} {t_raw:>11.1f} {t_ours:>17.1f} {100 * (t_ours - t_raw) / t_raw:>8.1f}% {t_list:>22.1f}")
    row = np.ascontiguousarray(x[0])
    mapping = dict(zip(art.schema.columns, x[0].tolist()))
    t_raw, t_arr, t_map = interleaved([lambda: session.run(None, {name: x[:1]}), lambda: runtime.predict(row),
                                       lambda: runtime.predict(mapping)], 4000)
    print(f"  single row: raw {t_raw:.1f} us, predict(ndarray) {t_arr:.1f} us, predict(mapping) {t_map:.1f} us")


def bench_cache(art: ModelArtifact, x: np.ndarray, runtime: InferenceRuntime) -> None:
    cached = CachedRuntime(runtime, PredictionCache(max_size=100_000, ttl_s=300))
    row = np.ascontiguousarray(x[1])
    mapping = dict(zip(art.schema.columns, x[1].tolist()))
    bar = "2024-03-01T14:00:00Z"
    cases = {
        "hit, ndarray row (key: row bytes)": lambda: cached.predict(row, instrument="EURUSD"),
        "hit, mapping row (key: row bytes)": lambda: cached.predict(mapping, instrument="EURUSD"),
        "hit, ndarray row (key: bar time)": lambda: cached.predict(row, instrument="EURUSD", bar_time=bar),
    }
    print("\n2. cache-hit latency, in-process (CachedRuntime.predict, 100,000 hits each)")
    print(f"{'case':<36} {'p50 us':>8} {'p99 us':>8}")
    for label, fn in cases.items():
        fn()  # the first call fills the entry
        assert fn().cached
        samples = np.empty(100_000, dtype=np.int64)
        for i in range(len(samples)):
            t0 = time.perf_counter_ns()
            fn()
            samples[i] = time.perf_counter_ns() - t0
        print(f"{label:<36} {pct(samples, 50):>8.2f} {pct(samples, 99):>8.2f}")
    misses = np.ascontiguousarray(x[1000:6000])
    samples = np.empty(len(misses), dtype=np.int64)
    for i, r in enumerate(misses):
        t0 = time.perf_counter_ns()
        cached.predict(r, instrument="GBPUSD")
        samples[i] = time.perf_counter_ns() - t0
    print(f"{'miss (model run + store)':<36} {pct(samples, 50):>8.2f} {pct(samples, 99):>8.2f}")
    s = cached.stats()
    print(f"  stats: hits {s.hits}, misses {s.misses}, size {s.size}, hit rate {s.hit_rate:.4f}")


def run_threads(predict: Callable[[np.ndarray], object], x: np.ndarray) -> tuple[float, np.ndarray]:
    """THREADS threads call predict on their own rows for CONCURRENT_SECONDS; -> (calls/s, latencies)."""
    barrier = threading.Barrier(THREADS + 1)
    stop = threading.Event()
    lat: list[list[int]] = [[] for _ in range(THREADS)]

    def worker(t: int) -> None:
        rows = x[t::THREADS]
        out = lat[t]
        barrier.wait()
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter_ns()
            predict(rows[i % len(rows)])
            out.append(time.perf_counter_ns() - t0)
            i += 1

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    barrier.wait()
    t0 = time.perf_counter()
    time.sleep(CONCURRENT_SECONDS)
    stop.set()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    all_lat = np.concatenate([np.asarray(v) for v in lat])
    return len(all_lat) / wall, all_lat


def bench_concurrent(x: np.ndarray, runtime: InferenceRuntime) -> None:
    print(f"\n3. concurrent single-row requests: {THREADS} threads, {CONCURRENT_SECONDS:.0f} s each "
          f"({os.cpu_count()} CPUs)")
    print(f"{'mode':<40} {'req/s':>9} {'p50 us':>8} {'p99 us':>9} {'mean batch':>11}")
    rows = np.ascontiguousarray(x[:4096])
    rate, lat = run_threads(runtime.predict, rows)
    print(f"{'no batching (runtime.predict)':<40} {rate:>9.0f} {pct(lat, 50):>8.1f} {pct(lat, 99):>9.1f} "
          f"{1.0:>11.1f}")
    for max_batch, wait_us in ((THREADS, 500), (64, 200), (64, 0)):
        with MicroBatcher(runtime, max_batch_size=max_batch, max_wait_us=wait_us) as batcher:
            rate, lat = run_threads(batcher.predict, rows)
            mean = batcher.stats().mean_batch
        label = f"micro-batching (max {max_batch}, wait {wait_us} us)"
        print(f"{label:<40} {rate:>9.0f} {pct(lat, 50):>8.1f} {pct(lat, 99):>9.1f} {mean:>11.1f}")


def main() -> None:
    t_start = time.perf_counter()
    art, x = build_artifact()
    runtime = InferenceRuntime(art)  # the full chain: TensorRT -> CUDA -> CPU, recorded
    print(f"onnxruntime {ort.__version__}; LightGBM regressor, {N_FEATURES} features, {N_TREES} trees; "
          f"alphaloop path: {runtime.path.value}")
    for a in runtime.provider_report().attempts:
        print(f"  {a.provider:<9} {a.status:<8} {a.reason}")
    bench_batches(art, x, runtime)
    bench_cache(art, x, runtime)
    bench_concurrent(x, runtime)
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
