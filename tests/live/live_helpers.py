"""Shared by the live tests: data, recording strategies, an in-memory recorder and the comparison of
a live run with its backtest."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.backtest import run_backtest
from alphaloop.bus import InMemoryBus
from alphaloop.core.errors import OrderError
from alphaloop.data import load_bars, load_sample
from alphaloop.execution import BrokerConfig
from alphaloop.indicators import ema, rsi
from alphaloop.live import EmbeddedRunner
from alphaloop.strategy import Strategy
from alphaloop.strategy.builtin import SmaCross

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "market"
GOOG = FIXTURES / "GOOG_daily.csv"
EURUSD = FIXTURES / "EURUSD_1h.csv"


def goog() -> pd.DataFrame:
    return load_bars(GOOG)


def three_instruments() -> dict[str, pd.DataFrame]:
    """Three samples on different clocks: B sparser and ending early (it settles mid-run), C later."""
    b = load_sample("SYNTH_B").iloc[::2].iloc[:500]
    return {"SYNTH_A": load_sample("SYNTH_A").iloc[:900], "SYNTH_B": b, "SYNTH_C": load_sample("SYNTH_C").iloc[150:1100]}


# ---- recording --------------------------------------------------------------------------------
class Recording:
    """Mixin: what the strategy saw each bar and every fill and order it got, to compare runs."""

    def start_recording(self) -> None:
        self.snapshots: list[tuple] = []
        self.fills_seen: list[tuple] = []
        self.sent: list[Any] = []

    def snapshot(self, ctx: Any) -> None:
        names = ctx.instruments
        self.snapshots.append((
            ctx.i, ctx.cash, ctx.equity, tuple(ctx.position(x) for x in names),
            tuple((p.size, p.avg_price, p.market_price, p.realized_pnl) for p in map(ctx.position_info, names)),
            tuple((o.id, str(o.status), o.filled, o.size, o.fraction, o.stop, o.parent_trade) for o in ctx.orders),
            tuple(len(ctx.history("close", x)) for x in names)))

    def keep(self, order: Any) -> Any:
        if order is not None:
            self.sent.append(order)
        return order

    def orders_final(self) -> list[tuple]:
        return [(o.id, o.instrument, o.size, o.fraction, o.limit, o.stop, o.sl, o.tp, str(o.tif), o.close_position,
                 o.created_bar, o.created_ns, str(o.status), o.filled, o.reason) for o in self.sent]


class RecordingSmaCross(Recording, SmaCross):
    name = "recording_sma_cross"

    def init(self, ctx):
        super().init(ctx)
        self.start_recording()

    def on_bar(self, ctx):
        super().on_bar(ctx)
        self.snapshot(ctx)

    def on_fill(self, ctx, fill):
        self.fills_seen.append((fill, ctx.equity, ctx.cash, ctx.i))


class PatternBrackets(Recording, Strategy):
    """Trades on pattern signals with market, limit, stop and stop-limit entries, brackets, relative
    sizes and every time in force; cancels stale entries; closes on some fills."""

    name = "pattern_brackets"
    params = {"size": 10.0}

    def pattern_detectors(self):
        return [("ema_cross", {"fast": 5, "slow": 20}), "rsi_extremes", "volatility_breakout"]

    def init(self, ctx):
        self.start_recording()
        self.n = 0

    def on_signal(self, ctx, signal):
        c = ctx.close[-1]
        sign = signal.direction.sign
        side = ctx.buy if sign > 0 else ctx.sell
        k = self.n % 7
        self.n += 1
        sl, tp = c * (1 - sign * 0.04), c * (1 + sign * 0.06)
        try:
            if k == 0:
                self.keep(side(self.size, sl=sl, tp=tp, tag="market"))
            elif k == 1:
                self.keep(side(self.size, limit=c * (1 - sign * 0.01), sl=sl, tp=tp, tif="gtc"))
            elif k == 2:
                self.keep(side(self.size, stop=c * (1 + sign * 0.01), sl=sl * 0.99 if sign > 0 else sl * 1.01, tp=tp))
            elif k == 3:
                self.keep(side(self.size, stop=c * (1 + sign * 0.005), limit=c * (1 + sign * 0.015), tif="day"))
            elif k == 4:
                self.keep(side(fraction=0.2, sl=sl))
            elif k == 5:
                self.keep(side(self.size, limit=c * (1 - sign * 0.003), tif="ioc"))
            else:
                self.keep(ctx.close_position(tag="flip"))
                self.keep(side(fraction=0.3, tp=tp, tif="gtd", expires_at=ctx.time + pd.Timedelta(days=3)))
        except OrderError:
            pass  # a bracket on the wrong side of a gapped price: refused in both runs

    def on_bar(self, ctx):
        for o in ctx.orders:
            if o.parent_trade is None and ctx.i - o.created_bar >= 4:
                ctx.cancel(o)
        self.snapshot(ctx)

    def on_fill(self, ctx, fill):
        self.fills_seen.append((fill, ctx.equity, ctx.cash, ctx.i))
        if fill.size > 0 and len(self.fills_seen) % 5 == 0:
            self.keep(ctx.close_position(tag="from_on_fill"))


class Rotation(Recording, Strategy):
    """Several instruments: long the ones above their EMA, short the ones below, limits and stops."""

    name = "rotation"
    params = {"n": 10}

    def init(self, ctx):
        self.start_recording()
        self.ema = {x: ctx.indicator(ema, "close", self.n, instrument=x) for x in ctx.instruments}
        self.rsi = {x: ctx.indicator(rsi, "close", 7, instrument=x) for x in ctx.instruments}

    def on_bar(self, ctx):
        for x in ctx.instruments:
            close, e, r = ctx.history("close", x), self.ema[x], self.rsi[x]
            if len(close) < self.n + 2 or math.isnan(e[-1]):
                continue
            gap = close[-1] / e[-1] - 1
            pos = ctx.position(x)
            try:
                if gap > 0.01 and pos <= 0 and r[-1] < 70:
                    self.keep(ctx.close_position(x))
                    self.keep(ctx.buy(fraction=0.25, instrument=x, sl=close[-1] * 0.93))
                elif gap < -0.01 and pos >= 0:
                    self.keep(ctx.close_position(x))
                    self.keep(ctx.sell(5.0, instrument=x, limit=close[-1] * 1.002, tp=close[-1] * 0.9))
                elif abs(gap) < 0.002 and pos:
                    self.keep(ctx.sell(abs(pos) / 2, instrument=x) if pos > 0 else ctx.buy(abs(pos) / 2, instrument=x))
            except OrderError:
                pass
        self.snapshot(ctx)

    def on_fill(self, ctx, fill):
        self.fills_seen.append((fill, ctx.equity, ctx.cash, ctx.i))


class RandomTrader(Recording, Strategy):
    """Random market, relative, limit, stop and bracket orders and closes on every instrument."""

    name = "random_trader_live"
    params = {"seed": 0, "rate": 0.3}

    def init(self, ctx):
        self.start_recording()
        self.rng = np.random.default_rng(self.seed)

    def on_bar(self, ctx):
        rng = self.rng
        if rng.random() <= self.rate:
            for x in ctx.instruments:
                close = ctx.history("close", x)
                if not close:
                    continue
                price = close[-1]
                kind = rng.integers(0, 7)
                side = ctx.buy if rng.random() < 0.5 else ctx.sell
                sign = 1 if side == ctx.buy else -1
                size = float(rng.integers(1, 20))
                try:
                    if kind == 0:
                        self.keep(side(size, instrument=x))
                    elif kind == 1:
                        self.keep(side(fraction=float(rng.uniform(0.05, 0.5)), instrument=x))
                    elif kind == 2:
                        self.keep(side(size, limit=price * (1 - sign * 0.01), instrument=x,
                                       tif=str(rng.choice(["gtc", "day", "ioc"]))))
                    elif kind == 3:
                        self.keep(side(size, stop=price * (1 + sign * 0.01), instrument=x))
                    elif kind == 4:
                        self.keep(side(size, sl=price * (1 - sign * 0.03), tp=price * (1 + sign * 0.03), instrument=x))
                    elif kind == 5 and ctx.orders:
                        ctx.cancel(ctx.orders[int(rng.integers(0, len(ctx.orders)))])
                    else:
                        self.keep(ctx.close_position(x))
                except OrderError:
                    continue
        self.snapshot(ctx)

    def on_fill(self, ctx, fill):
        self.fills_seen.append((fill, ctx.equity, ctx.cash, ctx.i))


# ---- running both and comparing ---------------------------------------------------------------
def run_both(make: Any, data: Any, config: BrokerConfig, **runner_kw: Any) -> tuple[Any, Any, Any, Any]:
    """(backtest strategy, backtest result, live strategy, live runner) for the same inputs."""
    bt = make()
    res = run_backtest(bt, data, config)
    lv = make()
    runner = EmbeddedRunner(lv, data, config, bus=runner_kw.pop("bus", InMemoryBus()), **runner_kw)
    runner.run()
    return bt, res, lv, runner


def fills_table(fills: Any) -> list[tuple]:
    return [(int(f.order_id), str(f.instrument), int(f.bar), int(f.time_ns), f.size, f.price, f.commission)
            for f in fills]


def backtest_fills(res: Any) -> list[tuple]:
    f = res.fills
    return list(zip(f["order_id"].tolist(), f["instrument"].tolist(), f["bar"].tolist(),
                    f["time"].array.asi8.tolist(), f["size"].tolist(), f["price"].tolist(), f["commission"].tolist()))


def assert_same_run(bt: Any, res: Any, lv: Any, runner: Any) -> None:
    """Orders, fills (bar, size, price, commission), what the strategy saw, and final equity: equal,
    float for float."""
    summary = runner.summary
    assert summary is not None and summary.errors == {}, summary.errors
    assert fills_table(runner.broker.broker.fills) == backtest_fills(res)
    assert [(fills_table([f])[0], e, c, i) for f, e, c, i in lv.fills_seen] == \
           [(fills_table([f])[0], e, c, i) for f, e, c, i in bt.fills_seen]
    assert lv.orders_final() == bt.orders_final()
    assert len(lv.snapshots) == len(bt.snapshots)
    for k, (a, b) in enumerate(zip(lv.snapshots, bt.snapshots)):
        assert a == b, f"bar {k}: live {a} != backtest {b}"
    assert runner.broker.broker.n_orders == res.n_orders
    assert summary.final_equity == res.final_equity  # bit for bit
    assert summary.final_equity == res.equity["equity"].iloc[-1]
    assert summary.fills == len(res.fills)
    assert runner.engine.ctx.equity == summary.final_equity  # the strategy's own view agrees with the broker
