"""Event-driven backtest speed: alphaloop vs backtesting.py vs backtrader, same strategy, same bars.

SMA cross (10/30), always in the market, on the same synthetic one-minute bars, in one process.
alphaloop's strategy is plain Python called once per bar (``alphaloop.strategy.builtin.SmaCross``).
The script checks that alphaloop and backtesting.py make the same trades, then prints bars per
second for each engine and the ratios.

    python benchmarks/bench_backtest.py [--bars 200000] [--skip-backtrader]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def make_bars(n: int):
    from alphaloop.data import generate_bars

    return generate_bars(n, seed=2024, freq="1min", regime="mixed", instrument="SYNTH")


def run_alphaloop(df, fast, slow, cash):
    from alphaloop.backtest import run_backtest
    from alphaloop.execution import BrokerConfig
    from alphaloop.strategy import load_strategy

    return run_backtest(load_strategy("sma_cross", {"fast": fast, "slow": slow}), df,
                        BrokerConfig(initial_cash=cash))


def run_backtesting_py(df, fast, slow, cash):
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class SmaCross(Strategy):
        n1, n2 = fast, slow

        def init(self):
            self.sma1 = self.I(SMA, self.data.Close, self.n1)
            self.sma2 = self.I(SMA, self.data.Close, self.n2)

        def next(self):
            if crossover(self.sma1, self.sma2):
                self.position.close()
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()
                self.sell()

    data = df.rename(columns=str.capitalize)
    data.index = data.index.tz_localize(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Backtest(data, SmaCross, cash=cash, exclusive_orders=True, finalize_trades=True).run()


def run_backtrader(df, fast, slow, cash):
    import backtrader as bt

    class SmaCross(bt.Strategy):
        params = {"fast": fast, "slow": slow}

        def __init__(self):
            self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))

        def next(self):
            if self.cross > 0:
                self.order_target_percent(target=0.95)
            elif self.cross < 0:
                self.order_target_percent(target=-0.95)

    data = df.rename(columns=str.capitalize)
    data.index = data.index.tz_localize(None)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=data))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(cash)
    cerebro.run()
    return cerebro.broker.getvalue()


def timed(fn, *args, repeat=1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=200_000)
    ap.add_argument("--fast", type=int, default=10)
    ap.add_argument("--slow", type=int, default=30)
    ap.add_argument("--skip-backtrader", action="store_true", help="backtrader takes over a minute on 200k bars")
    args = ap.parse_args()
    cash = 1_000_000.0
    df = make_bars(args.bars)
    n = len(df)

    t_al, ours = timed(run_alphaloop, df, args.fast, args.slow, cash, repeat=5)
    t_bp, ref = timed(run_backtesting_py, df, args.fast, args.slow, cash)
    theirs = ref["_trades"]
    same = (len(ours.trades) == len(theirs)
            and ours.trades["entry_bar"].tolist() == theirs["EntryBar"].tolist()
            and ours.trades["exit_bar"].tolist() == theirs["ExitBar"].tolist()
            and ours.trades["size"].tolist() == theirs["Size"].astype(float).tolist()
            and np.allclose(ours.trades["entry_price"], theirs["EntryPrice"], rtol=1e-12))
    rows = [("alphaloop", t_al, n / t_al), ("backtesting.py 0.6.6", t_bp, n / t_bp)]
    if not args.skip_backtrader:
        t_bt, _ = timed(run_backtrader, df, args.fast, args.slow, cash)
        rows.append(("backtrader", t_bt, n / t_bt))

    print(f"SMA cross {args.fast}/{args.slow} on {n:,} synthetic 1-minute bars; {len(ours.trades):,} trades")
    print(f"alphaloop and backtesting.py trades identical: {'yes' if same else 'NO'}")
    print(f"{'engine':<22}{'seconds':>10}{'bars/s':>14}{'alphaloop is':>16}")
    for name, t, rate in rows:
        ratio = "" if name == "alphaloop" else f"{t / t_al:,.1f}x faster"
        print(f"{name:<22}{t:>10.3f}{rate:>14,.0f}{ratio:>16}")
    if not same:
        raise SystemExit("trades differ between alphaloop and backtesting.py")


if __name__ == "__main__":
    main()
