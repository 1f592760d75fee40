"""Indicator and pattern-engine speed.

1. Vectorised alphaloop indicators vs TA-Lib on the same 1,000,000 values (best of a few runs,
   after the numba kernels are loaded: the time that takes, compiling or from numba's cache, is
   printed first).
2. Streaming update cost per bar (ns/update).
3. The pattern engine's throughput (bars/s) over a long synthetic hourly series.

Run: .venv/bin/python benchmarks/bench_indicators.py   (about half a minute)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import talib

import alphaloop.indicators as ind
from alphaloop.core.market import Bar
from alphaloop.indicators import _kernels
from alphaloop.patterns import PatternEngine

N_VECTOR = 1_000_000
N_STREAM = 100_000
N_ENGINE = 100_000


def synthetic_bars(n: int, seed: int = 42) -> pd.DataFrame:
    """A geometric random walk with intrabar ranges and volume, hourly UTC bars."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * (1 + rng.normal(0.0, 0.0005, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0.0, 0.003, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.0, 0.003, n))
    volume = rng.integers(100, 10_000, n).astype(float)
    index = pd.date_range("2015-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume},
                        index=index)


def best_of(func: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return best


def load_kernels() -> None:
    """Import numba and compile (or load from its cache) every kernel, as a first call would."""
    t0 = time.perf_counter()
    for kernel in _kernels.KERNELS:
        kernel.compile()
    print(f"\nnumba kernels ready in {time.perf_counter() - t0:.2f} s "
          f"({len(_kernels.KERNELS)} kernels; compiled on a cold cache, else loaded)")


def bench_vectorised(df: pd.DataFrame) -> None:
    load_kernels()
    h, lo, c, v = (df[k].to_numpy() for k in ("high", "low", "close", "volume"))
    t = df.index
    cases: list[tuple[str, Callable[[], object], Callable[[], object] | None]] = [
        ("SMA(30)", lambda: ind.sma(c, 30), lambda: talib.SMA(c, 30)),
        ("EMA(30)", lambda: ind.ema(c, 30), lambda: talib.EMA(c, 30)),
        ("WMA(30)", lambda: ind.wma(c, 30), lambda: talib.WMA(c, 30)),
        ("RSI(14)", lambda: ind.rsi(c, 14), lambda: talib.RSI(c, 14)),
        ("TRANGE", lambda: ind.true_range(h, lo, c), lambda: talib.TRANGE(h, lo, c)),
        ("ATR(14)", lambda: ind.atr(h, lo, c, 14), lambda: talib.ATR(h, lo, c, 14)),
        ("ADX(14)", lambda: ind.adx(h, lo, c, 14), lambda: talib.ADX(h, lo, c, 14)),
        ("BBANDS(20,2,2)", lambda: ind.bbands(c, 20), lambda: talib.BBANDS(c, 20)),
        ("MACD(12,26,9)", lambda: ind.macd(c), lambda: talib.MACD(c)),
        ("STOCH(5,3,3)", lambda: ind.stoch(h, lo, c), lambda: talib.STOCH(h, lo, c)),
        ("OBV", lambda: ind.obv(c, v), lambda: talib.OBV(c, v)),
        ("VWAP cumulative", lambda: ind.vwap(h, lo, c, v), None),
        ("VWAP daily", lambda: ind.vwap(h, lo, c, v, t, "D"), None),
        ("VWAP std daily", lambda: ind.vwap_std(h, lo, c, v, t, "D"), None),
        ("volatility(20)", lambda: ind.volatility(c, 20, annualize=True), None),
        ("zscore(20)", lambda: ind.zscore(c, 20), None),
    ]
    print(f"\nVectorised, {N_VECTOR:,} values (best of runs; ratio = alphaloop / TA-Lib)")
    print(f"{'indicator':<18}{'alphaloop ms':>14}{'TA-Lib ms':>12}{'ratio':>9}")
    print("-" * 53)
    for name, ours, theirs in cases:
        t_ours = best_of(ours, 3)
        if theirs is None:
            print(f"{name:<18}{t_ours * 1e3:>14.1f}{'-':>12}{'-':>9}")
            continue
        t_ta = best_of(theirs, 5)
        print(f"{name:<18}{t_ours * 1e3:>14.1f}{t_ta * 1e3:>12.2f}{t_ours / t_ta:>8.1f}x")


def bench_streaming(df: pd.DataFrame) -> None:
    rows = df.iloc[:N_STREAM]
    h, lo, c, v = (rows[k].tolist() for k in ("high", "low", "close", "volume"))
    t = list(rows.index)
    cases: list[tuple[str, object, tuple[list, ...]]] = [
        ("SMA(30)", ind.SMA(30), (c,)), ("EMA(30)", ind.EMA(30), (c,)), ("WMA(30)", ind.WMA(30), (c,)),
        ("RSI(14)", ind.RSI(14), (c,)), ("TrueRange", ind.TrueRange(), (h, lo, c)),
        ("ATR(14)", ind.ATR(14), (h, lo, c)), ("ADX(14)", ind.ADX(14), (h, lo, c)),
        ("BBands(20)", ind.BBands(20), (c,)), ("MACD", ind.MACD(), (c,)),
        ("Stoch", ind.Stoch(), (h, lo, c)), ("OBV", ind.OBV(), (c, v)),
        ("VWAP daily", ind.VWAP("D"), (t, h, lo, c, v)),
        ("Volatility(20)", ind.Volatility(20), (c,)), ("ZScore(20)", ind.ZScore(20), (c,)),
    ]
    print(f"\nStreaming, {N_STREAM:,} updates each")
    print(f"{'indicator':<18}{'ns/update':>12}")
    print("-" * 30)
    for name, obj, inputs in cases:
        update = obj.update
        t0 = time.perf_counter()
        for row in zip(*inputs):
            update(*row)
        elapsed = time.perf_counter() - t0
        print(f"{name:<18}{elapsed / N_STREAM * 1e9:>12.0f}")


def bench_engine(df: pd.DataFrame) -> None:
    frame = df.iloc[:N_ENGINE]
    print(f"\nPattern engine, {N_ENGINE:,} hourly bars, 4 built-in detectors")
    print(f"{'path':<34}{'bars/s':>10}{'signals':>10}")
    print("-" * 54)
    t0 = time.perf_counter()
    signals = PatternEngine().run(frame, "SYN")
    elapsed = time.perf_counter() - t0
    print(f"{'run(df)':<34}{N_ENGINE / elapsed:>10,.0f}{len(signals):>10,}")
    bars = [Bar("SYN", ts, r.open, r.high, r.low, r.close, r.volume)
            for ts, r in zip(frame.index, frame.itertuples())]
    engine = PatternEngine()
    t0 = time.perf_counter()
    count = sum(len(engine.on_bar(bar)) for bar in bars)
    elapsed = time.perf_counter() - t0
    print(f"{'on_bar(bar), bars prebuilt':<34}{N_ENGINE / elapsed:>10,.0f}{count:>10,}")
    for name in ("ema_cross", "vwap_deviation", "volatility_breakout", "rsi_extremes"):
        t0 = time.perf_counter()
        signals = PatternEngine([name]).run(frame, "SYN")
        elapsed = time.perf_counter() - t0
        print(f"{'run(df), ' + name + ' only':<34}{N_ENGINE / elapsed:>10,.0f}{len(signals):>10,}")


def main() -> None:
    started = time.perf_counter()
    df = synthetic_bars(N_VECTOR)
    bench_vectorised(df)
    bench_streaming(df)
    bench_engine(df)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
