"""The strategy engine: runs one Strategy on live bars through a :class:`LiveContext`.

It consumes signals and execution reports from the bus (dropping redeliveries by message id),
publishes orders and decisions, hands decisions, orders and fills to the recorder, and keeps
statistics. Faults never stop it: a bad or out-of-order bar, a signal for an instrument it does not
trade, a strategy exception, a failing recorder are each logged with the reason and counted.

A strategy exception inside ``on_bar``, ``on_signal`` or ``on_fill`` ends that one callback (the
orders it sent before raising stand); the next signal, bar or fill is handled as usual. The
backtester stops the run instead, since a backtest can be fixed and rerun.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.bus import Envelope, MessageBus
from alphaloop.core.decisions import Decision
from alphaloop.core.errors import StrategyError
from alphaloop.core.market import Bar
from alphaloop.core.orders import Fill, Order, OrderStatus
from alphaloop.execution.broker import BrokerConfig
from alphaloop.live import messages as m
from alphaloop.live import recorder as rec
from alphaloop.live.context import LiveContext
from alphaloop.live.lockstep import BarGate
from alphaloop.strategy.base import Strategy
from alphaloop.strategy.services import Services

log = logging.getLogger(__name__)
LATENCY_WINDOW = 10_000  # decision latencies kept for the percentiles (the most recent ones)
DEGRADED_BARS = 100  # health is "degraded" while the last error is this recent (in bars)
_NOT_FILLED = (OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED)


class StrategyEngine:
    def __init__(self, strategy: Strategy, instruments: list[str], bus: MessageBus, config: BrokerConfig, *,
                 services: Services | None = None, recorder: Any = None, streams: m.Streams | None = None,
                 run_id: str = "run", feature_window: int | None = None,
                 on_decision: Callable[[Decision], None] | None = None, group: str = "strategy-engine",
                 consumer: str = "engine-1"):
        self.strategy = strategy
        self.bus, self.streams = bus, streams or m.Streams()
        self.recorder = recorder
        self.run_id = run_id
        self.record_run_id = run_id  # the run id rows carry (a recorder's start_run may assign one)
        self.on_decision = on_decision
        self.group, self.consumer = group, consumer
        for stream in (self.streams.signals, self.streams.fills):
            bus.ensure_group(stream, group)
        self._order_ids = m.IdSource(run_id, "engine-orders")
        self._decision_ids = m.IdSource(run_id, "engine-decisions")
        self._seen = m.SeenIds()
        self.ctx = LiveContext(instruments, config, services=services, send=self._send,
                               on_decision=self._record_decision, feature_window=feature_window)
        self._instruments = set(instruments)
        self._gate = BarGate(instruments, self.fault, self._count_duplicate)
        self._unrecorded: dict[int, Order] = {}  # orders sent in the current callback, not yet recorded
        self._settlements: set[str] = set()
        self._on_fill = type(strategy).on_fill is not Strategy.on_fill
        self._callback_t0 = 0.0
        # statistics
        self.counts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()  # risk rule -> decisions it refused
        self.clipped: Counter[str] = Counter()  # risk rule -> decisions it clipped (order still sent)
        self.inference_paths: Counter[str] = Counter()
        self.latencies_us: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.last_error: str | None = None
        self._last_error_bar = -1
        self._last_bar_ns: int | None = None
        self._last_bar_wall: float | None = None
        self.started = False
        self.stopped = False

    # ---- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Run the strategy's ``init``; a failure here is fatal (there is nothing to run)."""
        try:
            self.strategy.init(self.ctx)
        except StrategyError:
            raise
        except Exception as e:
            raise StrategyError(f"{type(self.strategy).__name__}.init failed: {type(e).__name__}: {e}") from e
        self.started = True

    @property
    def reacts_to_fills(self) -> bool:
        """Whether the strategy overrides ``on_fill`` (it may then send orders between broker actions)."""
        return self._on_fill

    # ---- bars ----------------------------------------------------------------------------------
    def admit(self, env: Envelope) -> tuple[Bar, bool] | None:
        """The bar in a bars-stream message and whether it is its instrument's last, or None (a
        redelivery, or a bar that cannot be used: logged and counted)."""
        return self._gate.admit(env)

    def _count_duplicate(self) -> None:
        self.counts["duplicate_messages"] += 1

    def begin_bar(self, bar: Bar) -> None:
        self.ctx.begin_bar(bar)
        self.counts["bars"] += 1
        self._last_bar_ns = int(bar.time.value)
        self._last_bar_wall = time.monotonic()

    def grow(self, bars: list[Bar]) -> None:
        for bar in bars:
            self.ctx.grow(bar)
        errors = self.ctx.indicator_errors
        while errors:
            self.fault("indicator_error", errors.pop(0))
        self.counts["steps"] += 1

    # ---- events --------------------------------------------------------------------------------
    def _drain(self, stream: str) -> tuple[list[Envelope], list[str]]:
        """Every waiting message not seen before, and the entry ids to acknowledge once handled."""
        out: list[Envelope] = []
        entries: list[str] = []
        while True:
            batch = self.bus.read(stream, self.group, self.consumer, count=1000)
            if not batch:
                return out, entries
            for r in batch:
                entries.append(r.entry_id)
                if self._seen.add(r.envelope.id):
                    out.append(r.envelope)
                else:
                    self.counts["duplicate_messages"] += 1

    def poll_signals(self) -> int:
        """Hand each waiting signal to ``on_signal``; returns how many were handled."""
        envs, entries = self._drain(self.streams.signals)
        n = self.handle_signals(envs)
        if entries:
            self.bus.ack(self.streams.signals, self.group, entries)
        return n

    def handle_signals(self, envs: list[Envelope]) -> int:
        """Hand these signal messages (redeliveries already dropped) to ``on_signal``."""
        n = 0
        for env in envs:
            try:
                if env.kind != m.SIGNAL:
                    raise ValueError(f"unexpected message kind {env.kind!r}")
                signal = m.signal_from_payload(env.payload)
            except (KeyError, TypeError, ValueError) as e:
                self.fault("invalid_signal", f"signal message {env.id} dropped: {type(e).__name__}: {e}")
                continue
            if signal.instrument not in self._instruments:
                self.fault("unknown_instrument_signal", f"signal {signal.pattern} for unknown instrument "
                                                        f"{signal.instrument!r} dropped; trading: "
                                                        f"{', '.join(sorted(self._instruments))}")
                continue
            self.counts["signals"] += 1
            n += 1
            self._callback("on_signal", self.strategy.on_signal, signal)
        return n

    def on_bar(self) -> None:
        self._callback("on_bar", self.strategy.on_bar)

    def poll_fills(self) -> int:
        """Apply every waiting execution report to the account, record them, then call ``on_fill``
        for each fill (after the whole batch, as the backtester calls it after the broker's step).
        Returns how many messages were handled."""
        envs, entries = self._drain(self.streams.fills)
        if not entries:
            return 0
        self.handle_reports(envs)
        self.bus.ack(self.streams.fills, self.group, entries)
        return len(entries)

    def handle_reports(self, envs: list[Envelope]) -> None:
        """Apply one batch of execution reports (redeliveries already dropped): account, recorder,
        then ``on_fill`` for each fill of the batch."""
        fills: list[tuple[Fill, str, dict[str, Any]]] = []
        new_orders: list[tuple[Order, dict[str, Any]]] = []
        ended: list[Order] = []
        for env in envs:
            try:
                if env.kind == m.FILL:
                    fill = m.fill_from_payload(env.payload)
                    p = env.payload
                    self.ctx.account.apply_fill(fill, int(p["trade_id"]), bool(p["opened"]), p.get("pnl"))
                    fills.append((fill, env.id, p))
                elif env.kind == m.ORDER_STATE:
                    order, new, changed = self.ctx.account.apply_order_state(env.payload)
                    if new:
                        new_orders.append((order, env.payload))
                    elif order.status in _NOT_FILLED:  # (a cancel by the strategy changed it already)
                        ended.append(order)
                    if changed and order.status is OrderStatus.REJECTED:
                        self.counts["orders_rejected"] += 1
                        log.info("order %s rejected by the broker: %s", order.id, order.reason)
                elif env.kind == m.ACCOUNT:  # the broker wrote the balance off (out of money)
                    self.ctx.account.balance = float(env.payload["balance"])
                elif env.kind == m.BOOK:
                    self.ctx.account.set_pending(str(env.payload["instrument"]), list(env.payload["pending"]))
                else:
                    raise ValueError(f"unexpected message kind {env.kind!r}")
            except (KeyError, TypeError, ValueError) as e:
                self.fault("invalid_report", f"execution report {env.id} dropped: {type(e).__name__}: {e}")
        if self.recorder is not None:
            self._record_reports(fills, new_orders, ended)
        self.counts["fills"] += len(fills)
        if self._on_fill:
            for fill, _, _ in fills:
                self._callback("on_fill", self.strategy.on_fill, fill)

    # ---- strategy callbacks --------------------------------------------------------------------
    def _callback(self, name: str, fn: Callable[..., None], *args: Any) -> None:
        self._callback_t0 = time.perf_counter()
        try:
            fn(self.ctx, *args)
        except Exception as e:
            where = f"bar {self.ctx.i} ({self.ctx.time})"
            self.fault("strategy_error", f"{type(self.strategy).__name__}.{name} failed at {where}: "
                                         f"{type(e).__name__}: {e}; callback skipped", exc_info=True)
        finally:
            self._flush_orders()

    def _send(self, kind: str, what: Any, reference: float) -> None:
        """Called by the context: an order (with the price its brackets were checked against) or a
        cancel goes to the broker on the orders stream."""
        if kind == "order":
            order: Order = what
            payload = m.order_payload(order, reference_price=reference)
            self.bus.publish(self.streams.orders, m.envelope(m.ORDER, self._order_ids(), payload, "strategy-engine"))
            self.counts["orders_sent"] += 1
            self._unrecorded[order.id] = order
        else:
            self.bus.publish(self.streams.orders,
                             m.envelope(m.CANCEL, self._order_ids(), {"id": int(what)}, "strategy-engine"))
            self.counts["cancels_sent"] += 1

    def _record_decision(self, decision: Decision) -> None:
        self.counts["decisions"] += 1
        latency = decision.latency_us
        if latency is None:  # the strategy did not time itself: time since its callback began
            latency = (time.perf_counter() - self._callback_t0) * 1e6
        self.latencies_us.append(float(latency))
        if decision.inference_path:
            self.inference_paths[decision.inference_path] += 1
        if decision.risk_rule:
            (self.rejections if decision.action == "hold" else self.clipped)[decision.risk_rule] += 1
        self.bus.publish(self.streams.decisions, m.envelope(m.DECISION, self._decision_ids(),
                                                            m.decision_payload(decision), "strategy-engine"))
        if self.recorder is not None:
            row = None
            if decision.order_id is not None and decision.order_id.isdigit():
                order = self._unrecorded.pop(int(decision.order_id), None)
                if order is not None:
                    row = rec.order_row(order, self.record_run_id, decision_id=decision.id)
            self._recorder_call("record_decision", decision, row, run_id=self.record_run_id)
        if self.on_decision is not None:
            try:
                self.on_decision(decision)
            except Exception as e:
                self.fault("callback_error", f"on_decision callback failed: {type(e).__name__}: {e}")

    def _flush_orders(self) -> None:
        """Orders a callback sent and no decision claimed are recorded on their own."""
        if self._unrecorded:
            orders, self._unrecorded = list(self._unrecorded.values()), {}
            if self.recorder is not None:
                for order in orders:
                    self._recorder_call("record_order", rec.order_row(order, self.record_run_id))

    def _record_reports(self, fills: list[tuple[Fill, str, dict[str, Any]]],
                        new_orders: list[tuple[Order, dict[str, Any]]], ended: list[Order]) -> None:
        run = self.record_run_id
        for order, _ in new_orders:  # bracket children: stored before their fills (fills need their order)
            self._recorder_call("record_order", rec.order_row(order, run))
        if hasattr(self.recorder, "update_order"):
            for order in ended:
                self._recorder_call("update_order", rec.order_id(run, order.id), str(order.status), order.reason)
        for fill, message_id, _ in fills:
            if fill.order_id < 0:  # the broker's own close (end of data, out of money)
                oid, row = rec.settlement_order(fill, run)
                if oid not in self._settlements:
                    self._settlements.add(oid)
                    self._recorder_call("record_order", row)
                self._recorder_call("record_fill", rec.fill_row(fill, run, message_id, oid), str(OrderStatus.FILLED))
            else:
                order = self.ctx.account.orders.get(fill.order_id)
                status = None if order is None else str(order.status)
                self._recorder_call("record_fill", rec.fill_row(fill, run, message_id), status)

    def _recorder_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.recorder, method)(*args, **kwargs)
        except Exception as e:  # storage trouble must never stop trading
            self.fault("recorder_error", f"recorder.{method} failed: {type(e).__name__}: {e}")
            return None

    # ---- faults and statistics -----------------------------------------------------------------
    def fault(self, kind: str, reason: str, exc_info: bool = False) -> None:
        """Count a fault of ``kind``, keep it as the last error and log why."""
        self.faults[kind] += 1
        self.last_error = reason
        self._last_error_bar = self.counts["bars"]
        log.warning(reason, exc_info=exc_info)

    def latency_percentiles(self) -> tuple[float | None, float | None]:
        if not self.latencies_us:
            return None, None
        p50, p99 = np.percentile(np.fromiter(self.latencies_us, dtype=float), [50, 99])
        return float(p50), float(p99)

    def stats(self) -> dict[str, Any]:
        p50, p99 = self.latency_percentiles()
        c = self.counts
        return {
            "bars": c["bars"], "steps": c["steps"], "signals": c["signals"], "decisions": c["decisions"],
            "orders_sent": c["orders_sent"], "cancels_sent": c["cancels_sent"], "fills": c["fills"],
            "orders_rejected": c["orders_rejected"], "rejections": dict(self.rejections),
            "clipped": dict(self.clipped), "decision_latency_us": {"p50": p50, "p99": p99, "n": len(self.latencies_us)},
            "inference_paths": dict(self.inference_paths), "duplicates_dropped": c["duplicate_messages"],
            "faults": dict(self.faults), "errors": sum(self.faults.values()), "last_error": self.last_error,
        }

    def health(self) -> dict[str, Any]:
        """``ok``, ``degraded`` (an error within the last 100 bars), ``stopped`` or ``starting``."""
        recent = self.last_error is not None and self.counts["bars"] - self._last_error_bar < DEGRADED_BARS
        status = ("stopped" if self.stopped else "starting" if not self.started
                  else "degraded" if recent else "ok")
        since = None if self._last_bar_wall is None else time.monotonic() - self._last_bar_wall
        return {"status": status, "bars": self.counts["bars"],
                "last_bar_time": None if self._last_bar_ns is None else pd.Timestamp(self._last_bar_ns, tz="UTC"),
                "seconds_since_last_bar": since, "errors": sum(self.faults.values()), "last_error": self.last_error}
