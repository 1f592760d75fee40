"""The strategy engine's speed: ml_multifactor decisions with an ONNX model (CPU) and cached sentiment.

1. decision throughput and latency: a decision on every bar (on_bars=True) over synthetic hourly bars,
   ML answered by a LightGBM model through ONNX Runtime (CPU) behind the prediction cache, sentiment
   from the cached engine with news ingested;
2. a backtest of ml_multifactor (pattern-signal driven, the default) over 100,000 bars: bars per second.

    python benchmarks/bench_strategy.py [--bars 100000] [--decision-bars 20000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--decision-bars", type=int, default=20_000)
    args = ap.parse_args()

    from alphaloop.backtest import run_backtest
    from alphaloop.data import generate_bars
    from alphaloop.execution import BrokerConfig
    from alphaloop.ml.cache import CachedRuntime
    from alphaloop.ml.export import export_model
    from alphaloop.ml.runtime import InferenceRuntime
    from alphaloop.ml.sentiment import SentimentEngine
    from alphaloop.ml.training import train_model
    from alphaloop.strategy import load_strategy
    from alphaloop.strategy.services import RuntimePredictor, Services

    train = generate_bars(3000, seed=1, freq="1h", regime="mixed", instrument="SYNTH")
    t = time.perf_counter()
    artifact = export_model(train_model(train, model="lightgbm", horizon=5, n_folds=3), "bench")
    print(f"trained and exported a LightGBM model in {time.perf_counter() - t:.1f} s")

    def services(df):
        news = SentimentEngine()
        for k, when in enumerate(df.index[:: max(1, len(df) // 200)]):
            news.ingest("SYNTH", when, "SYNTH beats expectations" if k % 2 else "SYNTH cuts guidance")
        return Services(predictor=RuntimePredictor(CachedRuntime(InferenceRuntime(artifact, intra_op_threads=1))),
                        sentiment=news)

    df = generate_bars(args.decision_bars, seed=2, freq="1h", regime="mixed", instrument="SYNTH")
    svc = services(df)
    strat = load_strategy("ml_multifactor", {"on_bars": True, "detectors": "", "lot_size": 0.01})
    t = time.perf_counter()
    res = run_backtest(strat, df, BrokerConfig(initial_cash=1_000_000.0), services=svc)
    wall = time.perf_counter() - t
    lat = np.array([d.latency_us for d in res.decisions[1:]])  # the first computes the feature matrix
    paths = {}
    for d in res.decisions:
        paths[d.inference_path] = paths.get(d.inference_path, 0) + 1
    print(f"\n1. decisions on every bar: {len(res.decisions):,} decisions in {wall:.2f} s "
          f"= {len(res.decisions) / wall:,.0f} decisions/s (whole backtest, bars included)")
    print(f"   decision latency p50 {np.percentile(lat, 50):.0f} us, p99 {np.percentile(lat, 99):.0f} us; "
          f"inference paths {paths}; orders {len(res.fills)} fills")

    df = generate_bars(args.bars, seed=3, freq="1h", regime="mixed", instrument="SYNTH")
    svc = services(df)
    t = time.perf_counter()
    res = run_backtest(load_strategy("ml_multifactor", {"lot_size": 0.01}), df, BrokerConfig(initial_cash=1_000_000.0),
                       services=svc)
    wall = time.perf_counter() - t
    print(f"\n2. backtest of ml_multifactor (pattern signals) over {len(df):,} bars: {wall:.2f} s = "
          f"{len(df) / wall:,.0f} bars/s; {len(res.decisions):,} decisions, {len(res.trades):,} trades")


if __name__ == "__main__":
    main()
