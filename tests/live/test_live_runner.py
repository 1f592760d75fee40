"""The runner end to end: statistics, what the recorder receives, stopping mid-run (stop() and
Ctrl-C), the endless synthetic source, pacing, and the store's LiveRepository as the recorder."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import numpy as np
import pytest
from live_helpers import PatternBrackets, RecordingSmaCross, goog

from alphaloop.backtest import run_backtest
from alphaloop.core.decisions import Decision, Factor
from alphaloop.execution import BrokerConfig, Commission
from alphaloop.live import EmbeddedRunner, MarketDataReplay
from alphaloop.patterns import PatternEngine
from alphaloop.strategy import Strategy

CONFIG = BrokerConfig(initial_cash=50_000.0, commission=Commission(rate=0.001))
DETECTORS = [("ema_cross", {"fast": 5, "slow": 20}), "rsi_extremes"]
PATHS = ("onnx_cpu", "default", "tensorrt")


class Decides(Strategy):
    """One decision per signal: every third refused by a risk rule, others buy or sell with a
    bracket; inference paths and latencies cycle through known values."""

    name = "decides"

    def pattern_detectors(self):
        return DETECTORS

    def init(self, ctx):
        self.n = 0
        self.latencies = []

    def on_signal(self, ctx, signal):
        k, self.n = self.n, self.n + 1
        price = ctx.close[-1]
        rule = ("max_drawdown" if k % 2 else "cooldown") if k % 3 == 0 else None
        order = None
        if rule is None:
            side = ctx.buy if signal.direction == "long" else ctx.sell
            sign = signal.direction.sign
            order = side(5.0, sl=price * (1 - 0.05 * sign), tp=price * (1 + 0.05 * sign))
        latency = None if k % 5 == 0 else float(100 + k)
        if latency is not None:
            self.latencies.append(latency)
        ctx.record_decision(Decision(
            id=f"d{k}", strategy=self.name, instrument=signal.instrument, time_ns=ctx.time.value, bar=ctx.i,
            score=0.5 * signal.direction.sign, threshold=0.3, action="hold" if order is None else str(
                "buy" if order.is_buy else "sell"), reason="test", factors=(Factor("pattern", 0.5, 1.0, 1.0),),
            inference_path=PATHS[k % 3], risk_rule=rule, order_id=None if order is None else str(order.id),
            latency_us=latency))

    def on_bar(self, ctx):
        if ctx.i % 97 == 0:
            ctx.close_position()  # an order no decision made


class MemoryRecorder:
    def __init__(self):
        self.runs, self.finished, self.decisions, self.orders, self.fills, self.updates = [], [], [], {}, [], []

    def start_run(self, run_id, mode, instruments, spec, settings=None):
        self.runs.append((run_id, mode, list(instruments), spec, settings))

    def finish_run(self, run_id, summary=None, status="finished"):
        self.finished.append((run_id, summary, status))

    def record_decision(self, decision, order=None, *, run_id):
        self.decisions.append((decision, order))
        if order is not None:
            self.record_order(order)
        return True

    def record_order(self, order_row):
        assert order_row["id"] not in self.orders, f"order {order_row['id']} recorded twice"
        self.orders[order_row["id"]] = dict(order_row)
        return True

    def record_fill(self, fill_row, order_status=None):
        assert fill_row["order_id"] in self.orders, "a fill before its order"
        self.fills.append((fill_row, order_status))
        return True

    def update_order(self, order_id, status, reason=None):
        self.updates.append((order_id, status, reason))
        return True


def test_statistics_and_the_recorder_see_everything():
    df = goog()
    recorder, seen = MemoryRecorder(), []
    strat = Decides()
    runner = EmbeddedRunner(strat, df, CONFIG, recorder=recorder, on_decision=seen.append)
    summary = runner.run()
    signals = PatternEngine(DETECTORS).run(df, df.attrs["instrument"])
    n = len(signals)
    refused = [k for k in range(n) if k % 3 == 0]
    assert summary.errors == {}
    assert summary.signals == n == summary.decisions == len(seen) == len(recorder.decisions)
    assert summary.rejections == dict(Counter("max_drawdown" if k % 2 else "cooldown" for k in refused))
    assert summary.inference_paths == dict(Counter(PATHS[k % 3] for k in range(n)))
    closes = runner.engine.counts["orders_sent"] - (n - len(refused))
    assert summary.orders == n - len(refused) + closes and closes > 0
    assert summary.fills == len(runner.broker.broker.fills) > 0
    stats = runner.engine.stats()
    assert stats["decision_latency_us"]["n"] == n
    assert summary.latency_p50_us is not None and summary.latency_p99_us >= summary.latency_p50_us
    assert min(strat.latencies) <= summary.latency_p50_us  # strategy-timed and engine-timed latencies mixed
    # the recorder: every decision, every order exactly once (its decision's row when it made one), every fill
    run = runner.run_id
    assert recorder.runs[0][:3] == (run, "replay", [df.attrs["instrument"]])
    assert recorder.finished[0][0] == run and recorder.finished[0][1]["fills"] == summary.fills
    linked = [(d, o) for d, o in recorder.decisions if d.order_id is not None]
    assert all(o is not None and o["id"] == f"{run}:{d.order_id}" and o["decision_id"] == d.id for d, o in linked)
    account = runner.engine.ctx.account
    assert {f"{run}:{i}" for i in account.orders} <= set(recorder.orders)  # children included
    assert any(r["parent_trade"] is not None for r in recorder.orders.values())
    assert len(recorder.fills) == summary.fills and len({f["id"] for f, _ in recorder.fills}) == summary.fills
    assert [(f["bar"], f["size"], f["price"]) for f, _ in recorder.fills] == \
           [(f.bar, f.size, f.price) for f in runner.broker.broker.fills]
    for f, status in recorder.fills:
        if not f["order_id"].startswith(f"{run}:settle:"):
            assert status == str(account.orders[int(f["order_id"].rsplit(":", 1)[1])].status)
    # the recorder's last word on every order is its final status
    told = {oid: row["status"] for oid, row in recorder.orders.items()}
    told.update({f["order_id"]: status for f, status in recorder.fills})
    told.update({oid: status for oid, status, _ in recorder.updates})
    assert {oid: told[oid] for oid in told if ":settle:" not in oid} == \
           {f"{run}:{o.id}": str(o.status) for o in account.orders.values()}
    assert recorder.updates and {status for _, status, _ in recorder.updates} <= {"cancelled", "expired", "rejected"}


def test_the_store_live_repository_is_a_recorder(tmp_path):
    from alphaloop.store import LiveRepository, Store

    df = goog().iloc[:700]
    with Store(f"sqlite:///{tmp_path / 'live.db'}") as store:
        repo = LiveRepository(store)
        runner = EmbeddedRunner(Decides(), df, CONFIG, recorder=repo)
        summary = runner.run()
        assert summary.errors == {}
        stored = repo.run(runner.run_id)
        assert stored["status"] == "finished" and stored["mode"] == "replay"
        assert (stored["n_decisions"], stored["n_fills"]) == (summary.decisions, summary.fills)
        assert stored["n_orders"] == len(runner.engine.ctx.account.orders) + len(runner.engine._settlements)
        order = next(o for o in runner.engine.ctx.account.orders.values() if o.status == "filled" and o.tag is None
                     and o.parent_trade is None and not o.close_position)
        why = repo.explain(f"{runner.run_id}:{order.id}")
        assert why["decision"] is not None and why["decision"]["inference_path"] in PATHS
        assert why["fills"] and why["order"]["status"] == "filled"


class StopsItself(RecordingSmaCross):
    params = {**RecordingSmaCross.params, "at": 300}
    runner = None

    def on_bar(self, ctx):
        super().on_bar(ctx)
        if ctx.i == self.at:
            assert StopsItself.runner.engine.health()["status"] == "ok"
            StopsItself.runner.stop()


def test_stop_mid_run_finishes_the_bar_settles_and_summarises():
    df = goog()
    strat = StopsItself()
    runner = StopsItself.runner = EmbeddedRunner(strat, df, CONFIG)
    summary = runner.run()
    assert summary.ended == "stopped" and summary.bars == summary.steps == 301
    assert summary.positions == {df.attrs["instrument"]: 0.0} and summary.unrealized_pnl == 0.0
    assert summary.final_equity == summary.cash == pytest.approx(CONFIG.initial_cash + summary.realized_pnl, abs=1e-9)
    assert summary.final_equity == run_backtest(RecordingSmaCross(), df.iloc[:301], CONFIG).final_equity
    assert runner.broker.broker.pending_orders() == []


class CtrlC(RecordingSmaCross):
    def on_bar(self, ctx):
        super().on_bar(ctx)
        if ctx.i == 200:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_stops_cleanly():
    previous = signal.getsignal(signal.SIGINT)
    summary = EmbeddedRunner(CtrlC(), goog(), CONFIG).run()
    assert summary.ended == "stopped" and summary.bars == 201
    assert summary.final_equity == run_backtest(RecordingSmaCross(), goog().iloc[:201], CONFIG).final_equity
    assert signal.getsignal(signal.SIGINT) is previous


class Tape(Strategy):
    name = "tape"

    def init(self, ctx):
        self.bars = []

    def on_bar(self, ctx):
        self.bars.append((ctx.time.value, ctx.open[-1], ctx.close[-1]))
        if ctx.i % 100 == 0:
            ctx.buy(1.0)


def test_the_endless_synthetic_source_stops_at_max_bars():
    a, b = Tape(), Tape()
    summary = EmbeddedRunner(a, MarketDataReplay.synthetic(seed=7, chunk=700, freq="1h")).run(max_bars=2100)
    EmbeddedRunner(b, MarketDataReplay.synthetic(seed=7, chunk=700, freq="1h")).run(max_bars=1000)
    assert summary.ended == "max_bars" and summary.bars == summary.steps == 2100 == len(a.bars)
    assert a.bars[:1000] == b.bars  # deterministic: the same seed gives the same bars
    times = np.array([t for t, _, _ in a.bars])
    assert (np.diff(times) == 3_600_000_000_000).all()  # chunks continue the clock...
    assert all(a.bars[k][1] == a.bars[k - 1][2] for k in (700, 1400))  # ...and the price
    assert summary.fills == 2 * summary.orders and summary.positions == {"SYNTH": 0.0}


def test_speed_paces_the_bars():
    started = time.perf_counter()
    EmbeddedRunner(Tape(), MarketDataReplay.from_sources(goog(), speed=100.0)).run(max_bars=12)
    assert time.perf_counter() - started >= 0.1


def test_health_turns_degraded_after_an_error():
    class Once(PatternBrackets):
        def on_bar(self, ctx):
            if ctx.i == 30:
                raise ZeroDivisionError("once")
            if ctx.i == 31:
                self.health = runner.engine.health()
            super().on_bar(ctx)

    runner = EmbeddedRunner(Once(), goog().iloc[:60], CONFIG)
    strat = runner.strategy
    runner.run()
    assert strat.health["status"] == "degraded" and "ZeroDivisionError: once" in strat.health["last_error"]


def test_a_runner_runs_once():
    runner = EmbeddedRunner(Tape(), goog().iloc[:5])
    runner.run()
    with pytest.raises(Exception, match="runs once"):
        runner.run()
