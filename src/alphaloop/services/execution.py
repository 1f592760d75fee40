"""The execution service (port 8006): orders stream -> paper broker -> fills stream; positions and
orders over HTTP.

It takes the orders and cancels the strategy engine sends and, at each of the engine's ``clock``
markers, hands the orders that came before it to the broker as one batch, then carries out the
marker's broker actions in order (:func:`~alphaloop.live.lockstep.apply_action`: match a bar, check
for ruin, fill at the close, settle), publishing after each one its execution reports and a marker
``RUN:execution:SEQ:K`` with the action's result. The broker is the backtester's simulated broker
with the run's settings; it refuses an order id it already holds.

Recovery: at start and after any failure the broker is built afresh and the orders stream
processed again from the start; the reports it republishes carry the same ids and the strategy
engine drops them.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from alphaloop.live import messages as m
from alphaloop.live.lockstep import FINISH, Action, apply_action
from alphaloop.live.paper_broker import PaperBroker
from alphaloop.services import metrics
from alphaloop.services.http_app import make_app
from alphaloop.services.pipeline_protocol import (
    CLOCK,
    BusHolder,
    MetricsClock,
    Outbox,
    RunOptions,
    envelope,
    refresh_bus_metrics,
)
from alphaloop.services.serving import LoopWorker

log = logging.getLogger(__name__)
SERVICE = "execution"
GROUP = "execution"
CONSUMER = "execution-1"


class ExecutionService:
    def __init__(self, options: RunOptions, bus: BusHolder):
        self.options, self.bus = options, bus
        self.streams = options.streams
        self.instruments = options.instruments()
        self.config = options.broker_config()
        self.broker: PaperBroker | None = None
        self.finished = False
        self.rebuilds = 0
        self.gauges = MetricsClock()
        self._fills = 0  # fills already in the metrics (a rebuilt broker's replay is not counted again)
        self._fresh = False

    def _rebuild(self) -> None:
        bus = self.bus.get()
        bus.rewind(self.streams.orders, GROUP)
        self.outbox = Outbox(bus)  # a turn's reports and markers go out together, with the next read
        self.broker = PaperBroker(self.instruments, self.config, self.outbox, streams=self.streams,
                                  run_id=self.options.run_id, group=GROUP, consumer=CONSUMER)
        self.seen = m.SeenIds()
        self.batch: list[Any] = []
        self.unacked: list[str] = []
        self.turns = 0
        self.finished = False
        self._fresh = True
        self.rebuilds += 1
        log.info("execution: processing the orders stream of run %s from the start", self.options.run_id)

    def step(self) -> int:
        try:
            return self._step()
        except Exception:
            self._fresh = False
            raise

    def _step(self) -> int:
        if not self._fresh:
            self._rebuild()
        bus = self.bus.get()
        # the last turns' reports and markers, the acknowledgement of what they answered, and the
        # wait for the next orders: one round trip
        read = self.outbox.exchange(self.streams.orders, GROUP, CONSUMER, count=500, block_ms=100,
                                    acks=[(self.streams.orders, GROUP, self.unacked)])
        self.unacked = []
        for r in read:
            env = r.envelope
            if not self.seen.add(env.id):
                continue
            if env.kind == CLOCK:
                self._turn(env)
            else:
                self.batch.append(env)
                metrics.MESSAGES.labels(SERVICE, "orders").inc()
                log.debug("%s received", env.kind, extra={"message_id": env.id, "run_id": self.options.run_id})
        self.unacked.extend(r.entry_id for r in read)  # handled: acknowledged with the next read
        if not read or self.gauges.due():
            refresh_bus_metrics(bus, SERVICE, [(self.streams.orders, GROUP)])
        return len(read)

    def _turn(self, marker: Any) -> None:
        broker, bus = self.broker, self.outbox
        assert broker is not None
        seq = marker.payload.get("seq")
        if seq != self.turns + 1:
            log.warning("execution: marker %s has turn %s, expected %d", marker.id, seq, self.turns + 1)
        self.turns = seq if isinstance(seq, int) else self.turns + 1
        orders, self.batch = self.batch, []
        broker.handle_orders(orders)
        for k, raw in enumerate(marker.payload.get("actions") or []):
            action = Action.from_payload(raw)
            result = apply_action(broker, action)
            if action.kind == FINISH:
                self.finished = True
            bus.publish(self.streams.fills, envelope(CLOCK, f"{self.options.run_id}:{SERVICE}:{seq}:{k}",
                                                     {"seq": seq, "k": k, "result": result}, SERVICE))
        fills = broker.counts["fills"]
        if fills > self._fills:
            metrics.MESSAGES.labels(SERVICE, "fills").inc(fills - self._fills)
            self._fills = fills

    def positions(self) -> dict[str, Any]:
        if self.broker is None:
            return {"run_id": self.options.run_id, "positions": [], "cash": None, "equity": None}
        b = self.broker.broker
        books = list(b.books)
        return {"run_id": self.options.run_id, "cash": b.cash, "equity": b.equity(),
                "realized_pnl": self.broker.realized_pnl(), "unrealized_pnl": self.broker.unrealized_pnl(),
                "positions": [{"instrument": bk.name, "size": bk.size, "price": bk.price, "lots": len(bk.lots)}
                              for bk in books]}

    def orders(self) -> dict[str, Any]:
        if self.broker is None:
            return {"run_id": self.options.run_id, "pending": [], "stats": {}}
        b = self.broker.broker
        pending = [m.order_payload(o) for bk in list(b.books) for o in list(bk.orders)]
        return {"run_id": self.options.run_id, "pending": pending, "finished": self.finished,
                "turns": self.turns, "rebuilds": self.rebuilds, "stats": self.broker.stats()}


def build_app(settings: Any, *, options: RunOptions, **_: Any) -> FastAPI:
    bus = BusHolder(settings)
    service = ExecutionService(options, bus)
    worker = LoopWorker("execution", SERVICE, service.step, idle_s=0.001, on_stop=bus.close)
    app = make_app(SERVICE, title="alphaloop execution", description="orders stream -> paper broker -> fills stream",
                   workers=[worker], checks={"redis": bus.check}, max_body_bytes=settings.max_body_bytes)
    app.state.pipeline = service

    @app.get("/positions", summary="Cash, equity and the position in each instrument")
    def positions() -> dict[str, Any]:
        return service.positions()

    @app.get("/orders", summary="Orders pending at the broker, and its counts")
    def orders() -> dict[str, Any]:
        return service.orders()

    return app
