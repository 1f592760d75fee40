"""The strategy's view of its account, kept from the broker's execution reports alone.

The arithmetic is the simulated broker's, step for step and in the same order (``balance`` = cash +
cost of the open lots; :class:`~alphaloop.execution.broker.Book` recounts size and cost from the
lots), so ``cash`` and ``equity`` equal the backtester's bit for bit. Mathematically that is
``cash = initial - sum(size * price + commission)`` over the fills and
``equity = cash + sum(position * last close)``; summing in that other order would drift by a few
ulps, enough to change a size computed from equity.
"""

from __future__ import annotations

from typing import Any

from alphaloop.core.orders import Fill, Order, OrderStatus, Position, Trade
from alphaloop.execution.broker import Book, books_cash, books_equity
from alphaloop.live.messages import ACTIVE, apply_order_state, order_from_payload


class Account:
    def __init__(self, instruments: list[str], initial_cash: float):
        self.books = [Book(name, k) for k, name in enumerate(instruments)]
        self.book_by_name = {b.name: b for b in self.books}
        self.balance = float(initial_cash)
        self.realized: dict[str, list[float]] = {name: [] for name in instruments}
        self.orders: dict[int, Order] = {}  # every order seen, by id
        self.pending: dict[str, list[int]] = {name: [] for name in instruments}  # the broker's queue order
        self.last_order_id = 0

    # ---- orders ----------------------------------------------------------------------------
    def next_order_id(self) -> int:
        """Ids continue the broker's sequence (which also numbers the stop-loss and take-profit
        orders it creates), so in the embedded pump they equal the backtester's."""
        return self.last_order_id + 1

    def add_order(self, order: Order) -> None:
        self.orders[order.id] = order
        self.last_order_id = max(self.last_order_id, order.id)
        self.pending[order.instrument].append(order.id)

    def cancel_order(self, order: Order, reason: str) -> bool:
        """Cancel locally at once (as the backtester's broker does); False when not active."""
        if order.status not in ACTIVE:
            return False
        order.status, order.reason = OrderStatus.CANCELLED, reason
        queue = self.pending.get(order.instrument)
        if queue is not None and order.id in queue:
            queue.remove(order.id)
        return True

    def apply_order_state(self, p: dict[str, Any]) -> tuple[Order, bool, bool]:
        """Apply an execution report; returns (order, is new, status changed)."""
        oid = int(p["id"])
        order = self.orders.get(oid)
        if order is None:  # a stop-loss / take-profit child the broker created
            order = order_from_payload(p)
            self.orders[oid] = order
            self.last_order_id = max(self.last_order_id, oid)
            return order, True, True
        before = order.status
        apply_order_state(order, p)
        return order, False, order.status is not before

    def set_pending(self, instrument: str, ids: list[int]) -> None:
        self.pending[instrument] = [int(i) for i in ids]

    def pending_orders(self) -> list[Order]:
        return [self.orders[i] for b in self.books for i in self.pending[b.name]]

    # ---- fills -----------------------------------------------------------------------------
    def apply_fill(self, fill: Fill, trade_id: int, opened: bool, pnl: float | None) -> None:
        """Exactly what ``SimulatedBroker._open`` / ``_close`` do to balance and lots."""
        book = self.book_by_name[fill.instrument]
        if opened:
            book.lots.append(Trade(id=trade_id, instrument=fill.instrument, size=fill.size, entry_bar=fill.bar,
                                   entry_ns=fill.time_ns, entry_price=fill.price))
            self.balance -= fill.commission
        else:
            lot = next((t for t in book.lots if t.id == trade_id), None)
            if lot is None:
                raise KeyError(f"fill closes trade {trade_id}, which is not open on {fill.instrument}")
            size = fill.size
            if -size == lot.size:
                book.lots.remove(lot)
                closed_size = lot.size
            else:
                lot.size += size
                closed_size = -size
            self.balance += closed_size * (fill.price - lot.entry_price) - fill.commission
            self.realized[fill.instrument].append(float("nan") if pnl is None else pnl)
        book.recount()

    # ---- valuation (SimulatedBroker's formulas) --------------------------------------------
    def mark(self, instrument: str, price: float) -> None:
        self.book_by_name[instrument].price = price

    @property
    def cash(self) -> float:
        return books_cash(self.balance, self.books)

    def equity(self) -> float:
        return books_equity(self.balance, self.books)

    def position(self, instrument: str) -> Position:
        b = self.book_by_name[instrument]
        avg = b.cost / b.size if b.size else 0.0
        return Position(instrument, b.size, avg, b.price, sum(self.realized[instrument]))
