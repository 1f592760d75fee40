"""The strategy engine service (port 8005): signals and execution reports in, orders and decisions
out; decisions, orders and fills recorded in the database; ``/stats``, ``/decisions`` and
``/explain/{order_id}`` over HTTP.

It conducts the lock-step (:mod:`alphaloop.live.lockstep`): for each step read from the signals
stream it runs :func:`~alphaloop.live.lockstep.run_step`; every broker action goes to the execution
service as a ``clock`` marker on the orders stream (after the orders it follows), and the engine
handles the execution reports of each action as one batch, delimited by execution's own markers.
When the strategy does not override ``on_fill``, the engine cannot answer a report with an order,
so actions are sent in one turn per step (orders of step t, closes, settlements, the bars of t+1
and the ruin check); otherwise one action per turn, exactly as the embedded exchange.

Recovery: at start, and after any failure (Redis away, a protocol surprise), the engine is built
afresh, its consumer groups rewound, and both input streams processed again from the start through
the same code. What it republishes carries the same ids (execution drops it); what it records is
already in the database (inserts are idempotent by id).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Path, Query

from alphaloop.core.errors import StoreError
from alphaloop.live import messages as m
from alphaloop.live.lockstep import CHECK_RUIN, FINISH, ORDERS, Action, run_step, settle_rest
from alphaloop.live.runner import start_recorder
from alphaloop.live.strategy_engine import StrategyEngine
from alphaloop.services import metrics
from alphaloop.services.async_recorder import AsyncRecorder, ProcessRecorder
from alphaloop.services.http_app import make_app
from alphaloop.services.pipeline_protocol import (
    CLOCK,
    END,
    STEP,
    BusHolder,
    MetricsClock,
    Outbox,
    RunOptions,
    Stopping,
    database_check,
    envelope,
    refresh_bus_metrics,
)
from alphaloop.services.serving import LoopWorker

log = logging.getLogger(__name__)
SERVICE = "strategy"
GROUP = "strategy-engine"
CONSUMER = "engine-1"
EXECUTION_SILENT_S = 10.0
_COUNTED = (("signals", "signals"), ("decisions", "decisions"), ("orders_sent", "orders"), ("fills", "fills"))


class ProtocolError(RuntimeError):
    """A marker arrived out of turn: the streams do not hold what this engine expects."""


class EngineDriver:
    """The strategy engine of one run, driven from the bus."""

    def __init__(self, options: RunOptions, bus: BusHolder, recorder: Any = None,
                 services_factory: Callable[[], Any] | None = None):
        self.options, self.bus, self.recorder = options, bus, recorder
        self.streams = options.streams
        self.instruments = options.instruments()
        self.config = options.broker_config()
        options.strategy_object()  # a bad strategy or parameter fails here, before serving
        self.services = services_factory() if services_factory else None
        self.stopping: Callable[[], bool] = lambda: False
        self.engine: StrategyEngine | None = None
        self.rebuilds = 0
        self.waiting_since: float | None = None  # since when the engine waits for execution's answer
        self.gauges = MetricsClock()
        self.finished = False
        self.ended: str | None = None
        self._fresh = False
        # counts already in the metrics: a rebuilt engine counts from 0 again and must not add its replay
        self._reported = {name: 0 for name, _ in _COUNTED}

    # ---- (re)building ----------------------------------------------------------------------------
    def _rebuild(self) -> None:
        bus = self.bus.get()
        for stream in (self.streams.signals, self.streams.fills):
            bus.rewind(stream, GROUP)
        self.outbox = Outbox(bus)  # orders and decisions go out with the turn's marker
        engine = StrategyEngine(self.options.strategy_object(), self.instruments, self.outbox, self.config,
                                services=self.services, recorder=self.recorder, streams=self.streams,
                                run_id=self.options.run_id, group=GROUP, consumer=CONSUMER)
        engine.start()
        if self.recorder is not None and not self._run_recorded():
            start_recorder(self.recorder, run_id=self.options.run_id,
                           mode="synthetic" if self.options.synthetic else "replay", instruments=self.instruments,
                           strategy=engine.strategy, config=self.config, fault=engine.fault)
        self.engine = engine
        self.exact = engine.reacts_to_fills
        self.queue: list[tuple[Action, Callable[[], None] | None]] = []
        self.seq = 0
        self.sent_at_marker = 0
        self.settled: set[str] = set()
        self.seen_signals, self.seen_fills = m.SeenIds(), m.SeenIds()
        self.step_signals: list[Any] = []
        self.reports: list[tuple[Any, str]] = []  # (envelope, entry id) read, not handled yet
        self.unacked: list[str] = []  # fills-stream entries handled, acknowledged with a later read
        self.signal_acks: list[str] = []  # signals-stream entries handled, acknowledged with the next read
        self.finished, self.ended = False, None
        self._fresh = True
        self.rebuilds += 1
        log.info("strategy engine of run %s: processing its streams from the start (%s)", self.options.run_id,
                 "one action per turn" if self.exact else "one turn per step")

    def _run_recorded(self) -> bool:
        flush = getattr(self.recorder, "flush", None)
        if flush is not None:
            flush()  # a start_run still queued counts
        try:
            self.recorder.run(self.options.run_id)
            return True
        except StoreError:
            return False

    # ---- the loop ----------------------------------------------------------------------------------
    def step(self) -> int:
        try:
            return self._step()
        except Stopping:
            self._fresh = False
            return 0
        except Exception:
            self._fresh = False  # half-way through a step: rebuild and replay from the start
            raise

    def _step(self) -> int:
        if not self._fresh:
            self._rebuild()
        bus = self.bus.get()
        if self.finished:  # nothing more to do for this run: keep the gauges fresh, slowly
            if self.gauges.due():
                refresh_bus_metrics(bus, SERVICE, [(self.streams.signals, GROUP), (self.streams.fills, GROUP)])
            time.sleep(0.1)
            return 0
        # the last read's acknowledgements go with this read: one round trip
        batch = bus.exchange([], self.streams.signals, GROUP, CONSUMER, count=200, block_ms=100,
                             acks=[(self.streams.signals, GROUP, self.signal_acks),
                                   (self.streams.fills, GROUP, self.unacked)])
        self.signal_acks, self.unacked = [], []
        for r in batch:
            env = r.envelope
            if not self.seen_signals.add(env.id):
                continue
            if env.kind == m.SIGNAL:
                self.step_signals.append(env)
                log.debug("signal received", extra={"message_id": env.id, "run_id": self.options.run_id})
            elif env.kind == STEP:
                self._run_step(env)
            elif env.kind == END:
                steps = env.payload.get("steps")
                limited = self.options.bars is not None and isinstance(steps, int) and steps >= self.options.bars
                self._finish("max_bars" if limited else "end_of_data")
            if self.finished:
                break
        # acknowledged once handled, with the next read (or now, when there is none)
        self.signal_acks = [r.entry_id for r in batch]
        if self.finished:
            bus.ack(self.streams.signals, GROUP, self.signal_acks)
            bus.ack(self.streams.fills, GROUP, self.unacked)
            self.signal_acks, self.unacked = [], []
        if not batch or self.finished or self.gauges.due():
            refresh_bus_metrics(bus, SERVICE, [(self.streams.signals, GROUP), (self.streams.fills, GROUP)])
        return len(batch)

    def _run_step(self, env: Any) -> None:
        engine = self.engine
        assert engine is not None
        try:
            step = [m.bar_from_payload(p) for p in env.payload["bars"]]
        except (KeyError, TypeError, ValueError) as e:
            engine.fault("invalid_step", f"step message {env.id} dropped: {type(e).__name__}: {e}")
            return
        if not step:
            return
        ruined = run_step(engine, step, self.config.fill_on, self.do, self._signals)
        for bar, last in step:
            if last:
                self.settled.add(bar.instrument)
        self._count()
        if ruined:
            self._finish("ruined")

    def _signals(self, bars: list[Any]) -> None:
        envs, self.step_signals = self.step_signals, []
        assert self.engine is not None
        self.engine.handle_signals(envs)

    def _finish(self, ended: str) -> None:
        engine = self.engine
        assert engine is not None
        if ended != "ruined":
            settle_rest(self.instruments, self.settled, self.do)
        self.do(Action(FINISH), None)
        self.outbox.flush()
        engine.stopped = True
        self.ended = ended
        self._count()
        if self.recorder is not None:
            try:
                self.recorder.finish_run(run_id=self.options.run_id, summary=self.summary(),
                                         status="failed" if ended == "ruined" else "finished")
            except Exception as e:
                engine.fault("recorder_error", f"recorder.finish_run failed: {type(e).__name__}: {e}")
            flush = getattr(self.recorder, "flush", None)
            if flush is not None:
                flush()  # "finished" means: everything is in the database
        self.finished = True
        log.info("run %s ended (%s): %s", self.options.run_id, ended, engine.stats())

    # ---- broker actions through the execution service -----------------------------------------
    def do(self, action: Action, before: Callable[[], None] | None) -> Any:
        if action.kind == ORDERS and self._sent() == self.sent_at_marker:
            return None  # nothing sent since the last marker: the broker would take nothing, report nothing
        self.queue.append((action, before))
        if not (self.exact or action.kind in (CHECK_RUIN, FINISH)):
            if action.kind == ORDERS:
                self.outbox.flush()  # the step's orders reach the stream now; their marker follows
            return None  # goes out with the step's ruin check (nothing here can answer its reports)
        result = self._turn()
        if self.exact:
            while self._sent() > self.sent_at_marker:  # on_fill sent orders: let them reach the broker
                self.queue.append((Action("orders"), None))
                self._turn()
        return result

    def _sent(self) -> int:
        assert self.engine is not None
        return self.engine.counts["orders_sent"] + self.engine.counts["cancels_sent"]

    def _turn(self) -> Any:
        actions, self.queue = self.queue, []
        self.seq += 1
        payload = {"seq": self.seq, "actions": [a.to_payload() for a, _ in actions]}
        self.outbox.publish(self.streams.orders, envelope(CLOCK, f"{self.options.run_id}:{SERVICE}:clock:{self.seq}",
                                                          payload, SERVICE))
        self.sent_at_marker = self._sent()
        result = None
        for k, (_, before) in enumerate(actions):
            if before is not None:
                before()
            batch, result = self._reports_until(self.seq, k)
            assert self.engine is not None
            self.engine.handle_reports(batch)
        return result

    def _reports_until(self, seq: int, k: int) -> tuple[list[Any], Any]:
        """The execution reports of action ``k`` of turn ``seq`` (up to execution's marker) and the
        action's result."""
        bus = self.bus.get()
        self.waiting_since = time.monotonic()
        try:
            return self._await_marker(bus, seq, k)
        finally:
            self.waiting_since = None

    def _await_marker(self, bus: Any, seq: int, k: int) -> tuple[list[Any], Any]:
        while True:
            for i, (env, _) in enumerate(self.reports):
                if env.kind != CLOCK:
                    continue
                if (env.payload.get("seq"), env.payload.get("k")) != (seq, k):
                    raise ProtocolError(f"fills stream: marker {env.id} (turn {env.payload.get('seq')}, action "
                                        f"{env.payload.get('k')}) arrived while waiting for turn {seq}, action {k}")
                done, self.reports = self.reports[:i + 1], self.reports[i + 1:]
                self.unacked.extend(e for _, e in done)
                return [e for e, _ in done[:-1]], env.payload.get("result")
            if self.stopping():
                raise Stopping("shutting down while waiting for the execution service")
            if self.outbox.items:  # the turn (its marker) goes out with the wait for its answer
                got = self.outbox.exchange(self.streams.fills, GROUP, CONSUMER, count=1000, block_ms=100,
                                           acks=[(self.streams.fills, GROUP, self.unacked)])
                self.unacked = []
            else:
                got = bus.read(self.streams.fills, GROUP, CONSUMER, count=1000, block_ms=100)
            for r in got:
                if self.seen_fills.add(r.envelope.id):
                    self.reports.append((r.envelope, r.entry_id))
                else:
                    self.unacked.append(r.entry_id)

    # ---- statistics ----------------------------------------------------------------------------
    def _count(self) -> None:
        assert self.engine is not None
        for name, kind in _COUNTED:
            now = self.engine.counts[name]
            if now > self._reported[name]:
                metrics.MESSAGES.labels(SERVICE, kind).inc(now - self._reported[name])
                self._reported[name] = now

    def health(self) -> dict[str, Any]:
        """Not ready while execution has not answered a broker action for ``EXECUTION_SILENT_S``."""
        waiting = None if self.waiting_since is None else time.monotonic() - self.waiting_since
        out: dict[str, Any] = {"ok": waiting is None or waiting < EXECUTION_SILENT_S, "finished": self.finished,
                               "rebuilds": self.rebuilds}
        if waiting is not None:
            out["waiting_for_execution_s"] = round(waiting, 3)
        if self.engine is not None:
            h = self.engine.health()
            out.update(status=h["status"], bars=h["bars"], errors=h["errors"], last_error=h["last_error"])
        return out

    def summary(self) -> dict[str, Any]:
        engine = self.engine
        if engine is None:
            return {"run_id": self.options.run_id, "status": "starting"}
        for _ in range(5):  # the worker thread may be changing a counter while this reads them
            try:
                stats = engine.stats()
                break
            except RuntimeError:
                time.sleep(0.001)
        else:
            stats = {}
        ctx = engine.ctx
        return {"run_id": self.options.run_id, "strategy": engine.strategy.name, "instruments": self.instruments,
                "finished": self.finished, "ended": self.ended, "rebuilds": self.rebuilds,
                "recorder_backlog": getattr(self.recorder, "backlog", 0),
                "recorder_errors": getattr(self.recorder, "errors", 0),
                "cash": ctx.cash, "equity": ctx.equity,
                "positions": {x: ctx.position(x) for x in self.instruments}, **stats}


def build_app(settings: Any, *, options: RunOptions, services_factory: Callable[[], Any] | None = None,
              store: Any = None, **_: Any) -> FastAPI:
    """``store``: the database (default: the configured one); ``services_factory``: what the
    strategy is lent (ML predictor, sentiment), built once."""
    from alphaloop.store import LiveRepository, Store

    bus = BusHolder(settings)
    own_store = store is None
    store = store if store is not None else Store.from_settings(settings)
    repo = LiveRepository(store)
    # the configured database is written by a process of its own (off this engine's GIL); a store
    # handed in (perhaps in memory, not reachable from another process) by a thread
    recorder: Any = (ProcessRecorder(repo, settings.database_url, SERVICE)
                     if own_store and not _in_memory(settings.database_url) else AsyncRecorder(repo, SERVICE))
    driver = EngineDriver(options, bus, recorder=recorder, services_factory=services_factory)
    lock = threading.Lock()

    def closing() -> None:
        recorder.close()
        bus.close()
        if driver.services is not None:
            driver.services.close()

    worker = LoopWorker("strategy-engine", SERVICE, driver.step, idle_s=0.001, on_stop=closing)
    driver.stopping = lambda: worker.stopping
    app = make_app(SERVICE, title="alphaloop strategy engine",
                   description="signals and fills in, orders and decisions out; decisions and explain",
                   workers=[worker], checks={"redis": bus.check, "database": database_check(store),
                                             "engine": driver.health},
                   max_body_bytes=settings.max_body_bytes)
    app.state.pipeline = driver

    @app.get("/stats", summary="The engine's statistics (signals, decisions, orders, fills, latency, faults)")
    def stats() -> dict[str, Any]:
        with lock:
            return driver.summary()

    @app.get("/decisions", summary="The run's latest decisions, oldest first")
    def decisions(limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
        rows = repo.decisions(options.run_id, limit)
        return [{**d, "time": d["time"].isoformat(), "created_at": d["created_at"].isoformat()} for d in rows]

    @app.get("/explain/{order_id}", summary="Why an order exists: signal, factors, score, decision, fills")
    def explain(order_id: str = Path(..., max_length=300)) -> dict[str, Any]:
        try:
            chain = repo.explain(order_id)
        except StoreError as e:
            if "unknown order id" in str(e):
                raise HTTPException(404, detail=str(e)) from None
            raise
        return _jsonable(chain)

    return app


def _in_memory(url: str) -> bool:
    """An SQLite database that lives in the process that opened it."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return u.get_backend_name() == "sqlite" and (u.database in (None, "", ":memory:")
                                                  or "mode=memory" in str(u.query))


def _jsonable(v: Any) -> Any:
    """Times as ISO text, NaN as null: what JSON can carry."""
    import math

    import pandas as pd

    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
