"""Parameter-sweep speed: alphaloop's compiled sma_cross sweep vs vectorbt, same grid, same bars.

90 fast/slow combinations (fast 5..45 by 5, slow 50..140 by 10) of an always-in-the-market SMA
crossover on 200,000 synthetic one-minute bars (``generate_bars(200_000, seed=2024, freq="1min")``),
in one process, moving averages included. Prints seconds and bar-combinations per second for each
library and the ratio. Both compile with numba: alphaloop's compile time is measured in a child
process pointed at an empty numba cache; "first call" is each library's first call in this process
(loading what numba cached on disk; vectorbt's very first run on a machine compiles for minutes);
"warm" is the best of ``--repeat`` further calls.

vectorbt is timed in two stages: moving averages + crossing signals + portfolio simulation, and
then the statistics alphaloop's table holds (final value, trade count, max drawdown, Sharpe).
It is given its fastest public path (numpy arrays where pandas alignment is not needed).

Differences in conventions (vectorbt is made to trade the same way as closely as it can):

* fills: alphaloop fills a cross on bar i at bar i+1's open (backtesting.py's rules); vectorbt fills
  at the price it is given on the signal's bar, so its signals are shifted one bar and it is given
  the opens (``price=open``); both value the portfolio at the closes;
* crossings: alphaloop's cross is strict on two consecutive bars (``f[i-1] < s[i-1]`` and
  ``f[i] > s[i]``); vectorbt's ``crossed_above`` also counts a cross that follows bars of equality;
* moving averages: alphaloop uses pandas' rolling mean, vectorbt its own running sum (last-bit
  differences: a near-tie may cross on different bars);
* sizing: both trade whole units (vectorbt ``size_granularity=1``) with all available cash;
  alphaloop reserves the commission inside the size, vectorbt shrinks the order to fit it;
  a reversal is close-then-open in both (vectorbt ``direction="both"``: the short signal reverses);
* end of data: alphaloop closes the open position at the last bar's open and counts that trade;
  vectorbt leaves it open, marked at the last close (``trades.count()`` includes it too);
* ruin: alphaloop liquidates and stops at equity <= 0; vectorbt does not (no run here comes near);
* Sharpe: alphaloop's is over daily returns (backtest/metrics.py), vectorbt's over per-bar returns;
* threads: alphaloop runs the combinations on all numba threads (also shown on one); vectorbt's
  numba simulation runs on one.

    python benchmarks/bench_sweep.py [--bars 200000] [--repeat 3] [--commission 0.0] [--skip-vectorbt]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings

FAST = list(range(5, 50, 5))  # 9 windows
SLOW = list(range(50, 150, 10))  # 10 windows: 90 pairs, all with fast < slow
CASH = 1_000_000.0

def run_alphaloop(df, pairs, cash, commission):
    from alphaloop.backtest.sweep import sweep_sma_cross

    fasts = sorted({f for f, _ in pairs})
    slows = sorted({s for _, s in pairs})
    return sweep_sma_cross(df, fasts, slows, cash=cash, commission=commission)


def run_vectorbt(df, pairs, cash, commission):
    """The same sweep in vectorbt; returns (seconds to the simulated portfolio, seconds for the
    statistics, statistics)."""
    import numpy as np
    import vectorbt as vbt

    t0 = time.perf_counter()
    close, open_ = df["close"], df["open"]
    fast_ma = vbt.MA.run(close, window=[f for f, _ in pairs], short_name="fast")
    slow_ma = vbt.MA.run(close, window=[s for _, s in pairs], short_name="slow")
    slow = slow_ma.ma.to_numpy()
    above, below = fast_ma.ma_crossed_above(slow), fast_ma.ma_crossed_below(slow)
    # a cross on bar i is acted on at bar i+1's open: shift the signals one bar, trade at the opens
    long_entries, short_entries = above.copy(), below.copy()
    long_entries.iloc[0], short_entries.iloc[0] = False, False
    long_entries.iloc[1:], short_entries.iloc[1:] = above.to_numpy()[:-1], below.to_numpy()[:-1]
    pf = vbt.Portfolio.from_signals(close, long_entries, short_entries, direction="both", price=open_,
                                    size=np.inf, size_granularity=1.0, fees=commission, init_cash=cash,
                                    freq="1min")
    t1 = time.perf_counter()
    stats = {"final_equity": pf.final_value().to_numpy(), "return_pct": pf.total_return().to_numpy() * 100,
             "n_trades": pf.trades.count().to_numpy(), "max_drawdown_pct": pf.max_drawdown().to_numpy() * 100,
             "sharpe": pf.sharpe_ratio().to_numpy()}
    return t1 - t0, time.perf_counter() - t1, stats


def timed(fn, *args, repeat=1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, out


def check_one(df, fast, slow, cash, commission, table) -> bool:
    """The sweep's row for one combination against the event-driven backtester."""
    from alphaloop.backtest import run_backtest
    from alphaloop.execution import BrokerConfig, Commission
    from alphaloop.strategy import load_strategy

    res = run_backtest(load_strategy("sma_cross", {"fast": fast, "slow": slow}), df,
                       BrokerConfig(initial_cash=cash, commission=Commission(rate=commission)))
    row = table[(table["fast"] == fast) & (table["slow"] == slow)].iloc[0]
    return (row["final_equity"] == res.final_equity and row["n_trades"] == len(res.trades)
            and row["max_drawdown_pct"] == res.metrics["max_drawdown_pct"]
            and row["exposure_pct"] == res.metrics["exposure_pct"])


def compile_seconds(bars: int, commission: float) -> float:
    """alphaloop's first call in a fresh process with an empty numba cache (compile + run)."""
    with tempfile.TemporaryDirectory(prefix="bench_sweep_numba_") as cache:
        out = subprocess.run([sys.executable, __file__, "--compile-probe", "--bars", str(bars),
                              "--commission", str(commission)], check=True, capture_output=True, text=True,
                             env={**os.environ, "NUMBA_CACHE_DIR": cache})
    return float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3, help="warm runs of alphaloop's sweep (best is kept)")
    ap.add_argument("--vbt-repeat", type=int, default=1, help="warm runs of vectorbt's (best is kept)")
    ap.add_argument("--commission", type=float, default=0.0, help="rate, e.g. 0.001")
    ap.add_argument("--skip-vectorbt", action="store_true")
    ap.add_argument("--no-check", action="store_true", help="skip checking one row against run_backtest")
    ap.add_argument("--compile-probe", action="store_true", help=argparse.SUPPRESS)  # see compile_seconds
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    from alphaloop.data import generate_bars

    df = generate_bars(args.bars, seed=2024, freq="1min")
    pairs = [(f, s) for f in FAST for s in SLOW if f < s]
    if args.compile_probe:
        print(timed(run_alphaloop, df, pairs, CASH, args.commission)[0])
        return

    import numba
    import numpy as np

    n, m = len(df), len(pairs)
    work = n * m
    threads = numba.get_num_threads()

    t_compile = compile_seconds(args.bars, args.commission)
    t_first, table = timed(run_alphaloop, df, pairs, CASH, args.commission)
    t_warm, table = timed(run_alphaloop, df, pairs, CASH, args.commission, repeat=args.repeat)
    numba.set_num_threads(1)
    t_one, _ = timed(run_alphaloop, df, pairs, CASH, args.commission, repeat=args.repeat)
    numba.set_num_threads(threads)
    rows = [(f"alphaloop ({threads} threads)", t_first, t_warm), ("alphaloop (1 thread)", None, t_one)]

    theirs = None
    if not args.skip_vectorbt:
        t0 = time.perf_counter()
        import vectorbt  # its import compiles/loads a lot: timed apart

        t_import = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_vectorbt(df, pairs, CASH, args.commission)
        t_vfirst = time.perf_counter() - t0
        best = None
        for _ in range(args.vbt_repeat):
            sim, stat, theirs = run_vectorbt(df, pairs, CASH, args.commission)
            if best is None or sim + stat < sum(best):
                best = (sim, stat)
        name = f"vectorbt {vectorbt.__version__}"
        rows += [(f"{name}: MAs+signals+sim", None, best[0]), (f"{name}: + stats", t_vfirst, best[0] + best[1])]

    print(f"SMA cross sweep: {m} fast/slow combinations x {n:,} synthetic 1-minute bars "
          f"= {work:,} bar-combinations; commission {args.commission}")
    print(f"python {sys.version.split()[0]}, numba {numba.__version__}, {os.cpu_count()} CPUs, "
          f"numba threads {threads}")
    print(f"{'engine':<34}{'first call s':>13}{'warm s':>9}{'bar-comb/s':>14}{'alphaloop is':>22}")
    for name, first, warm in rows:
        ratio = f"{warm / t_warm:,.1f}x faster" if name.startswith("vectorbt") else ""
        first_text = "" if first is None else f"{first:.3f}"
        print(f"{name:<34}{first_text:>13}{warm:>9.3f}{work / warm:>14,.0f}{ratio:>22}")
    print(f"alphaloop compile + first run with an empty numba cache (child process): {t_compile:.2f} s; "
          f"warm = best of {args.repeat}")
    if theirs is not None:
        print(f"vectorbt: import {t_import:.1f} s (not counted); first call includes its numba cache "
              f"loading; warm = best of {args.vbt_repeat}")
        ours_ret = table["return_pct"].to_numpy()
        diff = np.abs(ours_ret - theirs["return_pct"])
        print(f"return_pct, alphaloop vs vectorbt: median |diff| {np.median(diff):.4f} points, max "
              f"{diff.max():.4f}; trade counts within 1 (vectorbt also counts the position left open): "
              f"{int((np.abs(table['n_trades'].to_numpy() - theirs['n_trades']) <= 1).sum())}/{m}")
    if not args.no_check:
        f, s = pairs[0]
        t0 = time.perf_counter()
        same = check_one(df, f, s, CASH, args.commission, table)
        print(f"sweep row {f}/{s} == run_backtest ({time.perf_counter() - t0:.1f} s): {'yes' if same else 'NO'}")
        if not same:
            raise SystemExit("the sweep and the event-driven backtester differ")


if __name__ == "__main__":
    main()
