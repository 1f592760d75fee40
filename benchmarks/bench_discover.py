"""Discovery speed: candidates evaluated per minute, serial vs local process pool vs Dask LocalCluster.

Two measurements on the same work (the files of ../shared/data/market, or --data FILE ...):

1. ``alphaloop discover`` end to end (Optuna rounds, pre-screening by the evaluation model, its
   bootstrap training, walk-forward scoring, the store): the report's candidates per minute, and
   a check that every executor gives the same report for the same seed;
2. the backtests alone: ``--candidates`` sma_cross specs, each over every file, through
   ``Evaluator.backtest`` (one executor ``map``), so the executors' own overhead shows.

    python benchmarks/bench_discover.py [--trials 60] [--candidates 120] [--workers 2] [--data FILE ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "market"


def pipeline_run(data, executor, name: str, trials: int, folder: Path) -> tuple[float, dict, float]:
    from alphaloop.discovery.pipeline import DiscoveryConfig, DiscoveryPipeline, InProcessML
    from alphaloop.discovery.retraining import FeedbackLoop, MemoryFeedbackRepository
    from alphaloop.ml.registry import MemoryRegistryBackend, ModelRegistry
    from alphaloop.store import Store

    loop = FeedbackLoop(MemoryFeedbackRepository(), ModelRegistry(folder / name / "models", MemoryRegistryBackend()))
    config = DiscoveryConfig(trials=trials, batch=10, bootstrap=20, seed=1,
                             storage=f"sqlite:///{folder / (name + '-optuna.db')}")
    with Store(f"sqlite:///{folder / (name + '.db')}") as store:
        t0 = time.perf_counter()
        report = DiscoveryPipeline(data, executor, InProcessML(loop), store, config, executor_name=name).run()
        seconds = time.perf_counter() - t0
    return report.candidates_per_minute, report.comparable(), seconds


def backtests_only(data, executor, n: int) -> float:
    from alphaloop.core.strategy_spec import StrategySpec
    from alphaloop.discovery.evaluator import Evaluator

    specs = [StrategySpec("sma_cross", {"fast": 2 + i % 28, "slow": 31 + (i * 7) % 170}) for i in range(n)]
    specs = list({s.key: s for s in specs}.values())
    ev = Evaluator(data, executor)
    ev.backtest(specs[:2])  # warm the workers (data shipped, modules imported)
    t0 = time.perf_counter()
    ev.backtest(specs[2:])
    return (len(specs) - 2) / (time.perf_counter() - t0) * 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="*", type=Path, default=sorted(SHARED.glob("*.csv")))
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--candidates", type=int, default=120)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    from alphaloop.data import load_bars
    from alphaloop.discovery.executors import DaskExecutor, LocalProcessExecutor, SerialExecutor

    data = {}
    for p in args.data:
        bars = load_bars(p)
        data[str(bars.attrs.get("instrument") or p.stem)] = bars
    print(f"data: {', '.join(f'{k} ({len(v)} bars)' for k, v in data.items())}; {args.workers} worker(s), "
          f"{os.cpu_count()} CPU(s)")
    makers = {"serial": SerialExecutor, "local": lambda: LocalProcessExecutor(max_workers=args.workers),
              "dask": lambda: DaskExecutor(n_workers=args.workers)}
    reports = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"\n1. alphaloop discover, {args.trials} candidates (sma_cross), end to end")
        print(f"{'executor':10} {'seconds':>8} {'candidates/min':>15}")
        for name, make in makers.items():
            t0 = time.perf_counter()
            with make() as ex:
                start_s = time.perf_counter() - t0
                cpm, reports[name], seconds = pipeline_run(data, ex, name, args.trials, Path(tmp))
            print(f"{name:10} {seconds:8.2f} {cpm:15.1f}" + (f"   (+{start_s:.1f} s to start the cluster)"
                                                           if start_s > 0.5 else ""))
        same = all(r == reports["serial"] for r in reports.values())
        print(f"same report for the same seed on every executor: {same}")

        print(f"\n2. backtests alone: {args.candidates} sma_cross candidates x {len(data)} files")
        print(f"{'executor':10} {'candidates/min':>15}")
        for name, make in makers.items():
            with make() as ex:
                print(f"{name:10} {backtests_only(data, ex, args.candidates):15.1f}")


if __name__ == "__main__":
    main()
