"""The pattern engine service (port 8004): bars stream -> signals stream.

It admits bars exactly as the embedded runner does (:class:`~alphaloop.live.lockstep.BarGate`),
feeds each complete timeline step to the strategy's detectors, publishes the step's signals and
then the step itself (its admitted bars and ``last`` flags), so the strategy engine reads one
ordered stream. Ids come from the step number (``RUN:patterns:S:K`` for the K-th signal of step S,
``RUN:patterns:step:S``), so processing the bars again republishes the same ids.

Recovery: after a restart or a bus failure the service forgets its state, rewinds its consumer
group to the start of the bars stream and processes it again (see :mod:`.pipeline_protocol`).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from fastapi import FastAPI

from alphaloop.live import messages as m
from alphaloop.live.lockstep import BarGate
from alphaloop.patterns import PatternEngine, PatternError
from alphaloop.services import metrics
from alphaloop.services.http_app import make_app
from alphaloop.services.pipeline_protocol import (
    END,
    STEP,
    BusHolder,
    MetricsClock,
    Outbox,
    RunOptions,
    envelope,
    refresh_bus_metrics,
)
from alphaloop.services.serving import LoopWorker

log = logging.getLogger(__name__)
SERVICE = "patterns"
GROUP = "patterns"


class PatternService:
    def __init__(self, options: RunOptions, bus: BusHolder):
        self.options, self.bus = options, bus
        self.streams = options.streams
        self.instruments = options.instruments()
        self.detectors_of = options.strategy_object  # a fresh strategy (and detectors) per rebuild
        self.detectors_of()  # a bad strategy or parameter fails here, before serving
        self.counts: Counter[str] = Counter()
        self.finished = False
        self._fresh = False
        self.gauges = MetricsClock()

    def _rebuild(self) -> None:
        bus = self.bus.get()
        bus.rewind(self.streams.bars, GROUP)
        detectors = self.detectors_of().pattern_detectors()
        self.engine = PatternEngine(detectors) if detectors else None
        self.gate = BarGate(self.instruments, self._fault)
        self.seen = m.SeenIds()
        self.pending: list[Any] = []  # envelopes of the step being gathered
        self.outbox = Outbox(bus)  # what the steps read produce, sent with the next read
        self.unacked: list[str] = []  # bars-stream entries handled, acknowledged with the next read
        self.step_no: int | None = None
        self.finished = False
        self.counts = Counter()
        self._fresh = True
        log.info("patterns: processing the bars stream of run %s from the start", self.options.run_id)

    def _fault(self, kind: str, reason: str) -> None:
        self.counts[kind] += 1
        log.warning(reason)

    def step(self) -> int:
        try:
            return self._step()
        except Exception:
            self._fresh = False  # state may be half-way through a step: rebuild from the start
            raise

    def _step(self) -> int:
        if not self._fresh:
            self._rebuild()
        bus = self.bus.get()
        # the last read's signals and steps, its acknowledgement and the wait for more bars: one round trip
        batch = self.outbox.exchange(self.streams.bars, GROUP, "patterns-1", count=500, block_ms=100,
                                     acks=[(self.streams.bars, GROUP, self.unacked)])
        self.unacked = []
        for r in batch:
            env = r.envelope
            if not self.seen.add(env.id):
                self.counts["duplicate_messages"] += 1
                continue
            if env.kind == END:
                self._flush()
                self.outbox.publish(self.streams.signals, envelope(END, f"{self.options.run_id}:{SERVICE}:end",
                                                                   dict(env.payload), SERVICE))
                self.finished = True
                continue
            step = env.payload.get("step") if isinstance(env.payload, dict) else None
            if step != self.step_no:
                self._flush()
                self.step_no = step
            self.pending.append(env)
            if isinstance(env.payload.get("step_bars"), int) and len(self.pending) >= env.payload["step_bars"]:
                self._flush()
        self.unacked = [r.entry_id for r in batch]
        if not batch or self.gauges.due():
            refresh_bus_metrics(bus, SERVICE, [(self.streams.bars, GROUP)])
        return len(batch)

    def _flush(self) -> None:
        """The gathered step is complete: admit its bars, detect, publish signals then the step."""
        envs, self.pending = self.pending, []
        if not envs:
            return
        s = envs[0].payload.get("step")
        admitted = [(bar, last, env.id) for env in envs for bar, last in [self.gate.admit(env) or (None, None)]
                    if bar is not None]
        if not admitted:
            return
        bus, run = self.outbox, self.options.run_id
        k = 0
        for bar, _, _ in admitted:
            if self.engine is None:
                continue
            try:
                signals = self.engine.on_bar(bar)
            except PatternError as e:
                self._fault("refused_bars", f"pattern engine skipped a bar: {e}")
                continue
            for sig in signals:
                message_id = f"{run}:{SERVICE}:{s}:{k}"
                bus.publish(self.streams.signals, envelope(m.SIGNAL, message_id, m.signal_payload(sig), SERVICE))
                log.debug("signal %s %s on %s", sig.pattern, sig.direction, sig.instrument,
                          extra={"message_id": message_id, "run_id": run})
                k += 1
                self.counts["signals"] += 1
                metrics.MESSAGES.labels(SERVICE, "signals").inc()
        payload = {"step": s, "bars": [m.bar_payload(bar, last) for bar, last, _ in admitted],
                   "bar_ids": [i for _, _, i in admitted], "signals": k}
        bus.publish(self.streams.signals, envelope(STEP, f"{run}:{SERVICE}:step:{s}", payload, SERVICE))
        self.counts["steps"] += 1
        metrics.MESSAGES.labels(SERVICE, "bars").inc(len(admitted))

    def stats(self) -> dict[str, Any]:
        return {"run_id": self.options.run_id, "finished": self.finished,
                "detectors": [] if getattr(self, "engine", None) is None else [d.name for d in self.engine.detectors],
                **dict(self.counts)}


def build_app(settings: Any, *, options: RunOptions, **_: Any) -> FastAPI:
    bus = BusHolder(settings)
    service = PatternService(options, bus)
    worker = LoopWorker("patterns", SERVICE, service.step, idle_s=0.001, on_stop=bus.close)
    app = make_app(SERVICE, title="alphaloop pattern engine", description="bars stream -> signals stream",
                   workers=[worker], checks={"redis": bus.check}, max_body_bytes=settings.max_body_bytes)
    app.state.pipeline = service

    @app.get("/stats", summary="Steps, signals and refused bars so far")
    def stats() -> dict[str, Any]:
        return service.stats()

    return app
