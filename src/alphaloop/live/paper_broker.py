"""Paper trading: the backtester's simulated broker behind the message bus.

The broker consumes orders (and cancels) from the orders stream, matches them against each new bar
with the same ``SimulatedBroker`` and ``BrokerConfig`` a backtest uses, and publishes execution
reports on the fills stream: each fill (with the trade it opened or closed), each order whose state
changed (including the stop-loss / take-profit orders it creates), and each instrument's queue of
pending orders when it changed. Order ids are the producer's: a second order with an id the broker
already holds is refused, never placed twice.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any

from alphaloop.bus import MessageBus
from alphaloop.core.errors import OrderError
from alphaloop.core.market import Bar
from alphaloop.core.orders import Order, OrderStatus, Trade
from alphaloop.execution.broker import Book, BrokerConfig, SimulatedBroker
from alphaloop.live import messages as m

log = logging.getLogger(__name__)
_DATA_ENDED = "data ended before the order could fill"


class _ReportingBroker(SimulatedBroker):
    """Notes, beside each fill, the trade it opened or closed and the closed part's P&L, and the
    bracket orders each entry created: what the strategy's account needs to stay exact."""

    def __init__(self, instruments: list[str], config: BrokerConfig):
        super().__init__(instruments, config)
        self.fill_notes: list[tuple[int, bool, float | None]] = []  # parallel to self.fills
        self.new_children: list[tuple[Order, int, str]] = []  # (child, entry order id, "sl" | "tp")

    def _open(self, book: Book, order: Order, size: float, price: float, i: int, t: int) -> Trade:
        trade = super()._open(book, order, size, price, i, t)
        self.fill_notes.append((trade.id, True, None))
        for role, child in (("sl", trade.sl_order), ("tp", trade.tp_order)):
            if child is not None:
                self.new_children.append((child, order.id, role))
        return trade

    def _close(self, book: Book, trade: Trade, size: float, price: float, i: int, t: int,
               order_id: int, reason: str) -> None:
        super()._close(book, trade, size, price, i, t, order_id, reason)
        self.fill_notes.append((trade.id, False, self.closed_trades[-1].pnl))


class PaperBroker:
    def __init__(self, instruments: list[str], config: BrokerConfig, bus: MessageBus, *,
                 streams: m.Streams | None = None, run_id: str = "run", group: str = "paper-broker",
                 consumer: str = "broker-1"):
        self.config = config
        self.broker = _ReportingBroker(instruments, config)
        self.bus, self.streams = bus, streams or m.Streams()
        self.group, self.consumer = group, consumer
        bus.ensure_group(self.streams.orders, group)
        self._ids = m.IdSource(run_id, "broker")
        self._seen = m.SeenIds()
        self._order_ids: set[int] = set()  # every order id the broker ever held
        self._tracked: dict[int, tuple[Order, tuple[Any, ...] | None]] = {}  # active orders, last reported state
        self._children: dict[int, tuple[int, str]] = {}  # child id -> (entry order id, role)
        self._queues: dict[str, tuple[int, ...]] = {b.name: () for b in self.broker.books}
        self._reported = 0  # fills already published
        self._current: dict[str, tuple[int, int, float, float]] = {}  # instrument -> (i, t_ns, open, close)
        self.settled: set[str] = set()
        self.counts: Counter[str] = Counter()

    # ---- bars ----------------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        """Match the pending orders against this bar (before the strategy sees it)."""
        book = self.broker.book_by_name[bar.instrument]
        prev = self._current.get(bar.instrument)
        i = 0 if prev is None else prev[0] + 1
        t = int(bar.time.value)
        self._current[bar.instrument] = (i, t, bar.open, bar.close)
        if book.orders:
            self.broker.process(book, i, t, bar.open, bar.high, bar.low, bar.close, bar.volume)
        else:
            book.price = bar.close
        self._report()

    def check_ruin(self, bars: list[Bar]) -> bool:
        """After this step's matching: liquidate at the close and report True if equity is gone,
        with the backtester's test (one instrument: the close against the ruin band; several:
        equity <= 0 with positions open)."""
        b = self.broker
        if len(b.books) == 1:
            c = bars[-1].close
            lo, hi = b.ruin_band()
            if not (c <= lo or c >= hi):
                return False
            b.books[0].price = c
        elif not (any(bk.lots for bk in b.books) and b.equity() <= 0):
            return False
        for book in b.books:
            cur = self._current.get(book.name)
            if cur is not None:
                b.close_all(book, book.price, cur[0], cur[1], "out_of_money")
        b.balance = 0.0  # what is left is lost (as the backtester rules): the account is told so
        self.counts["ruined"] += 1
        log.warning("account out of money: positions liquidated at the close, run stops")
        self._report()
        self._publish(m.ACCOUNT, {"balance": b.balance, "reason": "out_of_money"})
        return True

    def process_close(self, bar: Bar) -> None:
        """``fill_on="close"``: fill the market orders sent on this bar at its close."""
        book = self.broker.book_by_name[bar.instrument]
        if book.orders:
            i, t, _, _ = self._current[bar.instrument]
            self.broker.process_close(book, i, t, bar.close, bar.volume)
            self._report()

    def settle(self, instrument: str) -> None:
        """End of an instrument's data: cancel what is pending and close its lots at the last bar's
        open (its close with ``fill_on="close"``), as the backtester's ``_settle`` does."""
        cur = self._current.get(instrument)
        self.settled.add(instrument)
        if cur is None:
            return
        i, t, o, c = cur
        book = self.broker.book_by_name[instrument]
        for order in list(book.orders):
            self.broker.cancel(order, _DATA_ENDED)
        price = c if self.config.fill_on == "close" else o
        for lot in list(reversed(book.lots)):
            self.broker.close_lot(book, lot, price, i, t, "end_of_data")
        self._report()

    # ---- orders --------------------------------------------------------------------------------
    def poll_orders(self) -> int:
        """Take every order and cancel waiting on the orders stream; returns how many were read."""
        n = 0
        while True:
            batch = self.bus.read(self.streams.orders, self.group, self.consumer, count=500)
            if not batch:
                break
            for rec in batch:
                self._handle(rec.envelope)
            self.bus.ack(self.streams.orders, self.group, [rec.entry_id for rec in batch])
            n += len(batch)
        if n:
            self._report()
        return n

    def handle_orders(self, envs: list[Any]) -> int:
        """Take one batch of orders and cancels (as :meth:`poll_orders` does with what it reads)."""
        for env in envs:
            self._handle(env)
        if envs:
            self._report()
        return len(envs)

    def _handle(self, env: Any) -> None:
        if not self._seen.add(env.id):
            self.counts["duplicate_messages"] += 1
            return
        try:
            if env.kind == m.ORDER:
                self._submit(m.order_from_payload(env.payload), env.payload.get("reference_price"))
            elif env.kind == m.CANCEL:
                self._cancel(int(env.payload["id"]))
            else:
                self._fault("unexpected_message", f"orders stream: unexpected message kind {env.kind!r}")
        except (KeyError, TypeError, ValueError) as e:
            self._fault("invalid_message", f"orders stream: malformed {env.kind} message {env.id}: "
                                           f"{type(e).__name__}: {e}")

    def _submit(self, order: Order, reference: Any) -> None:
        b = self.broker
        if order.id in self._order_ids or order.id <= 0:
            self._fault("duplicate_order_id", f"order {order.id} refused: the broker already holds an order "
                                              "with that id" if order.id > 0 else f"order id {order.id} is not positive")
            return
        self._order_ids.add(order.id)
        initial = m.order_snapshot(order)
        numbers = [order.size, order.fraction, order.limit, order.stop, order.sl, order.tp]
        bad = [v for v in numbers if v is not None and not math.isfinite(v)]
        try:
            if bad or not isinstance(reference, int | float) or not math.isfinite(reference):
                raise OrderError(f"non-finite number in the order ({bad}) or its reference price ({reference!r})")
            prev = b.n_orders
            b.n_orders = order.id - 1  # submit numbers the order n_orders + 1: the producer's id
            try:
                b.submit(order, float(reference))
            except OrderError:
                b.n_orders = prev
                raise
            b.n_orders = max(prev, order.id)  # later bracket children are numbered after every id seen
            self._tracked[order.id] = (order, initial)
        except OrderError as e:
            order.status, order.reason = OrderStatus.REJECTED, str(e)
            self.counts["rejected"] += 1
            log.warning("order %s on %s rejected: %s", order.id, order.instrument, e)
            self._publish(m.ORDER_STATE, m.order_payload(order))

    def _cancel(self, order_id: int) -> None:
        entry = self._tracked.get(order_id)
        if entry is None:
            self.counts["cancel_of_inactive"] += 1  # already filled, cancelled or never known: nothing to do
            log.info("cancel for order %s ignored: not active at the broker", order_id)
            return
        self.broker.cancel(entry[0], "cancelled by strategy")

    # ---- reports -------------------------------------------------------------------------------
    def _publish(self, kind: str, payload: dict[str, Any]) -> None:
        self.bus.publish(self.streams.fills, m.envelope(kind, self._ids(), payload, "paper-broker"))

    def _report(self) -> None:
        """Publish what changed since the last report: fills, order states, order queues."""
        b = self.broker
        fills, notes = b.fills, b.fill_notes
        if len(notes) != len(fills):  # the broker added a fill outside _open/_close: reports would be wrong
            raise RuntimeError("SimulatedBroker recorded a fill this paper broker did not see; update _ReportingBroker")
        for k in range(self._reported, len(fills)):
            trade_id, opened, pnl = notes[k]
            self._publish(m.FILL, m.fill_payload(fills[k], trade_id, opened, pnl))
            self.counts["fills"] += 1
        self._reported = len(fills)
        for child, parent, role in b.new_children:
            self._order_ids.add(child.id)
            self._children[child.id] = (parent, role)
            self._tracked[child.id] = (child, None)
        b.new_children.clear()
        for oid, (order, last) in list(self._tracked.items()):
            now = m.order_snapshot(order)
            if now != last:
                extra = {}
                if oid in self._children:
                    extra = {"parent_order_id": self._children[oid][0], "role": self._children[oid][1]}
                self._publish(m.ORDER_STATE, m.order_payload(order, **extra))
                if order.status is OrderStatus.REJECTED:
                    self.counts["rejected"] += 1
            if order.status in m.ACTIVE:
                self._tracked[oid] = (order, now)
            else:
                del self._tracked[oid]
        for book in b.books:
            queue = tuple(o.id for o in book.orders)
            if queue != self._queues[book.name]:
                self._queues[book.name] = queue
                self._publish(m.BOOK, {"instrument": book.name, "pending": list(queue)})

    def _fault(self, kind: str, reason: str) -> None:
        self.counts[kind] += 1
        log.warning(reason)

    # ---- state ---------------------------------------------------------------------------------
    def realized_pnl(self) -> float:
        return float(sum(t.pnl for t in self.broker.closed_trades))

    def unrealized_pnl(self) -> float:
        return float(sum(lot.size * (b.price - lot.entry_price) for b in self.broker.books for lot in b.lots))

    def stats(self) -> dict[str, Any]:
        b = self.broker
        return {"orders_held": sum(len(bk.orders) for bk in b.books), "fills": len(b.fills),
                "closed_trades": len(b.closed_trades), "balance": b.balance, **dict(self.counts)}
