"""The simulated broker: order matching against bars, trade lots and cash.

Fill rules (backtesting.py's, so results can be checked against it):

* an order sent while bar ``i`` is current fills on bar ``i + 1``: market orders at its open;
  with ``fill_on="close"`` market orders fill at bar ``i``'s close instead;
* a stop triggers when the bar trades through it and fills at ``max(open, stop)`` for a buy
  (``min`` for a sell): a gap through the stop fills at the worse open;
* a limit fills when the bar reaches it, at ``min(open, limit)`` for a buy (``max`` for a sell);
  a stop-limit whose limit lies beyond its stop does not fill on the bar that triggers it, since the
  order of the two touches inside a bar is unknown (pessimistic);
* stop-loss and take-profit orders attached to a trade are checked first, stop-loss before
  take-profit: when both are inside one bar the loss is taken (pessimistic);
* positions are netted FIFO: an opposite fill closes the oldest lots first, and whatever is left opens
  a new lot;
* ``spread`` raises a buy's entry price (lowers a sell's) by that fraction; exits are at the raw
  price, so the spread is paid once per round trip;
* a relative order (``fraction``) is sized at fill time to ``fraction`` of the available equity
  (equity less the value of open lots), whole lots only, reserving its commission.

Accounting: ``balance`` is cash plus the cost of open lots (what backtesting.py calls cash), so
``cash = balance - sum(lot.size * lot.entry_price)`` and ``equity = cash + sum(size * price)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from alphaloop.core.errors import ConfigError, OrderError
from alphaloop.core.orders import Fill, Order, OrderStatus, Position, TimeInForce, Trade
from alphaloop.execution.costs import Commission, FixedSlippage, NoSlippage, VolumeShareSlippage

_ACTIVE = (OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED)
# enum members as module constants: an identity test is far cheaper than a class attribute lookup
_PENDING, _PARTIAL, _FILLED = OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED
_GTC = TimeInForce.GTC
_DAY_NS = 86_400_000_000_000


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    initial_cash: float = 10_000.0
    commission: Commission = field(default_factory=Commission)
    spread: float = 0.0
    slippage: NoSlippage | FixedSlippage | VolumeShareSlippage = field(default_factory=NoSlippage)
    fill_on: str = "next_open"  # or "close"
    lot_size: float = 1.0  # relative orders are floored to whole lots; 1e-8 for crypto, say

    def __post_init__(self) -> None:
        if not self.initial_cash > 0:
            raise ConfigError(f"initial cash must be > 0, got {self.initial_cash}")
        if self.fill_on not in ("next_open", "close"):
            raise ConfigError(f"fill_on must be 'next_open' or 'close', got {self.fill_on!r}")
        if not 0 <= self.spread < 0.1:
            raise ConfigError(f"spread {self.spread} must be within [0, 0.1)")
        if not self.lot_size > 0:
            raise ConfigError(f"lot size must be > 0, got {self.lot_size}")


class Book:
    """One instrument's open lots, pending orders and last price."""

    __slots__ = ("cost", "index", "lots", "name", "orders", "price", "size")

    def __init__(self, name: str, index: int):
        self.name, self.index = name, index
        self.lots: list[Trade] = []
        self.orders: list[Order] = []
        self.size = 0.0  # net position, sum of lot sizes
        self.cost = 0.0  # sum of lot.size * lot.entry_price
        self.price = math.nan  # last close seen

    def recount(self) -> None:
        # Recomputed from the lots (a handful) rather than updated incrementally, so no rounding drifts.
        lots = self.lots
        if not lots:
            self.size = self.cost = 0.0
        elif len(lots) == 1:
            lot = lots[0]
            self.size, self.cost = lot.size, lot.size * lot.entry_price
        else:
            self.size = sum(lot.size for lot in lots)
            self.cost = sum(lot.size * lot.entry_price for lot in lots)


def books_cash(balance: float, books: list[Book]) -> float:
    """Cash of an account keeping ``balance`` (cash plus the cost of open lots) over ``books``."""
    return balance - sum(b.cost for b in books)


def books_equity(balance: float, books: list[Book]) -> float:
    """Equity with every book marked at its last price; the one formula the broker and the live
    account both use, so a size computed from equity is the same to the last bit."""
    eq = balance
    for b in books:
        if b.lots:
            eq += b.price * b.size - b.cost
    return eq


class SimulatedBroker:
    def __init__(self, instruments: list[str], config: BrokerConfig | None = None):
        self.config = config or BrokerConfig()
        self.books = [Book(name, k) for k, name in enumerate(instruments)]
        self.book_by_name = {b.name: b for b in self.books}
        self.balance = float(self.config.initial_cash)
        self.fills: list[Fill] = []
        self.closed_trades: list[Trade] = []
        self.rejected: list[Order] = []
        self.n_orders = 0
        self._next_trade_id = 0
        self._commission = self.config.commission.cost_function()
        self._spread = self.config.spread
        self._slip = None if isinstance(self.config.slippage, NoSlippage) else self.config.slippage
        self._lot = self.config.lot_size

    # ---- state -------------------------------------------------------------------------------
    @property
    def cash(self) -> float:
        return books_cash(self.balance, self.books)

    def equity(self) -> float:
        return books_equity(self.balance, self.books)

    def position(self, instrument: str) -> Position:
        b = self.book_by_name[instrument]
        avg = b.cost / b.size if b.size else 0.0
        realized = sum(t.pnl for t in self.closed_trades if t.instrument == instrument)
        return Position(instrument, b.size, avg, b.price, realized)

    def ruin_band(self) -> tuple[float, float]:
        """For a one-instrument account: the closes at or beyond which equity is <= 0 (low, high).

        Lets the per-bar loop check for ruin with two float comparisons instead of an equity sum.
        """
        book = self.books[0]
        if not book.size:
            return -math.inf, math.inf
        edge = (book.cost - self.balance) / book.size  # equity = balance + size * close - cost = 0
        return (edge, math.inf) if book.size > 0 else (-math.inf, edge)

    def pending_orders(self) -> list[Order]:
        return [o for b in self.books for o in b.orders]

    def _available(self, book: Book, price: float) -> float:
        """Equity less the value of open lots, valuing this book at ``price`` (the fill price)."""
        eq, used = self.balance, 0.0
        for b in self.books:
            if b.lots:
                p = price if b is book else b.price
                eq += p * b.size - b.cost
                used += abs(b.size) * p
        return max(0.0, eq - used)

    # ---- orders ------------------------------------------------------------------------------
    def submit(self, order: Order, reference_price: float) -> Order:
        """Validate and queue an order. ``reference_price`` is the last close, used to check brackets."""
        book = self.book_by_name.get(order.instrument)
        if book is None:
            raise OrderError(f"unknown instrument {order.instrument!r}; known: {', '.join(self.book_by_name)}")
        size, fraction = order.size, order.fraction
        if (size is not None) + (fraction is not None) + order.close_position != 1:
            raise OrderError("an order needs exactly one of size (units), fraction (of equity) or close_position")
        if size is not None and not (size != 0 and math.isfinite(size)):
            raise OrderError(f"order size must be a non-zero finite number, got {size}")
        if fraction is not None and not 0 < abs(fraction) < 1:
            raise OrderError(f"order fraction must be within (-1, 0) or (0, 1), got {fraction}")
        priced = order.limit is not None or order.stop is not None or order.sl is not None or order.tp is not None
        if priced:
            self._check_prices(order, reference_price)
        if order.tif is TimeInForce.GTD and order.expires_at is None:
            raise OrderError("a GTD order needs expires_at")
        self.n_orders += 1
        order.id = self.n_orders
        book.orders.append(order)
        return order

    def _check_prices(self, order: Order, reference_price: float) -> None:
        for name in ("limit", "stop", "sl", "tp"):
            v = getattr(order, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise OrderError(f"order {name} price must be a positive number, got {v}")
        if order.close_position:
            return
        sign = 1.0 if order.is_buy else -1.0
        ref = order.limit or order.stop or reference_price * (1 + math.copysign(self._spread, sign))
        lo, hi = (order.sl, order.tp) if sign > 0 else (order.tp, order.sl)
        if not (lo or -math.inf) < ref < (hi or math.inf):
            side = "long" if sign > 0 else "short"
            raise OrderError(f"{side} order needs {'SL < price < TP' if sign > 0 else 'TP < price < SL'}; "
                             f"got SL={order.sl}, price={ref:.6g}, TP={order.tp}")

    def cancel(self, order: Order, reason: str = "cancelled by strategy",
               status: OrderStatus = OrderStatus.CANCELLED) -> None:
        if order.status in _ACTIVE:
            order.status, order.reason = status, reason
            book = self.book_by_name[order.instrument]
            if order in book.orders:
                book.orders.remove(order)

    def _reject(self, book: Book, order: Order, reason: str) -> None:
        order.status, order.reason = OrderStatus.REJECTED, reason
        book.orders.remove(order)
        self.rejected.append(order)

    # ---- matching ----------------------------------------------------------------------------
    def process(self, book: Book, i: int, t: int, o: float, h: float, lo: float, c: float,
                v: float) -> None:
        """Match this book's pending orders against bar ``i`` (called before the strategy sees it)."""
        book.price = c
        reprocess = False
        for order in list(book.orders):
            status = order.status
            if status is not _PENDING and status is not _PARTIAL:
                continue  # removed by an earlier fill in this pass (a sibling SL/TP)
            if order.tif is not _GTC and order.created_bar != i and self._expired(order, t):
                continue
            if order.close_position:
                buy = None if not book.size else book.size < 0
            else:
                buy = (order.size if order.size is not None else order.fraction) > 0  # type: ignore[operator]
            if buy is None:
                self.cancel(order, "no position to close")
                continue
            stop = order.stop
            if stop is not None:
                if not (h >= stop if buy else lo <= stop):
                    self._unfilled(order)
                    continue
                order.stop = None  # triggered: from here on a market or limit order
            limit = order.limit
            if limit is not None:
                hit = lo <= limit if buy else h >= limit
                if not hit or (stop is not None and (limit <= stop if buy else limit >= stop)):
                    self._unfilled(order)
                    continue
                base = o if stop is None else stop
                price = min(base, limit) if buy else max(base, limit)
            else:
                price = o
                if stop is not None:
                    price = max(price, stop) if buy else min(price, stop)
            if order.parent_trade is not None:
                if limit is None and self._slip is not None:
                    price = self._slip.adjust(price, order.size, v)  # type: ignore[arg-type]
                self._fill_exit(book, order, price, i, t)
                continue
            opened = self._fill(book, order, buy, price, i, t, v, slippable=limit is None)
            if opened is not None and (order.sl is not None or order.tp is not None):
                if limit is None and stop is None:
                    reprocess = True  # a bracket may trigger inside the bar its market entry filled
                elif stop is not None and limit is None and order.tp is not None and (
                        (buy and order.tp <= h and (order.sl or -math.inf) < lo)
                        or (not buy and order.tp >= lo and (order.sl or math.inf) > h)):
                    reprocess = True  # stop entry and TP in one bar, SL untouched: unambiguous
        if reprocess:
            self.process(book, i, t, o, h, lo, c, v)

    def process_close(self, book: Book, i: int, t: int, c: float, v: float) -> None:
        """With ``fill_on="close"``: fill the market orders sent on bar ``i`` at its close."""
        for order in list(book.orders):
            if (order.status in _ACTIVE and order.created_bar == i and order.parent_trade is None
                    and order.limit is None and order.stop is None):
                buy = self._is_buy(order, book)
                if buy is None:
                    self.cancel(order, "no position to close")
                    continue
                self._fill(book, order, buy, c, i, t, v, slippable=True)

    def _is_buy(self, order: Order, book: Book) -> bool | None:
        if order.close_position:
            return None if not book.size else book.size < 0
        if order.size is not None:
            return order.size > 0
        return order.fraction > 0  # type: ignore[operator]

    def _expired(self, order: Order, t: int) -> bool:
        tif = order.tif
        if tif is TimeInForce.DAY and t // _DAY_NS != order.created_ns // _DAY_NS:
            self.cancel(order, "day order expired", OrderStatus.EXPIRED)
            return True
        if tif is TimeInForce.GTD and t > order.expires_at.value:  # type: ignore[union-attr]
            self.cancel(order, f"expired at {order.expires_at}", OrderStatus.EXPIRED)
            return True
        return False

    def _unfilled(self, order: Order) -> None:
        if order.tif is TimeInForce.IOC:
            self.cancel(order, "immediate-or-cancel order not filled on its first bar")

    def _fill(self, book: Book, order: Order, buy: bool, price: float, i: int, t: int,
              v: float, slippable: bool) -> Trade | None:
        """Fill a stand-alone order at ``price``: close opposite lots FIFO, open a lot with the rest.

        Sizing uses the bar's price; slippage (never on limit fills) then moves the price for the
        quantity actually filled.
        """
        sign = 1.0 if buy else -1.0
        adj = price * (1 + math.copysign(self._spread, sign))
        lot = self._lot
        available = 0.0
        if order.close_position:
            need = -book.size
            per_unit = adj + self._commission(need, price) / abs(need)
        elif order.fraction is not None:
            per_unit = adj + self._commission(order.fraction, price) / abs(order.fraction)
            available = self._available(book, price)
            units = (available * abs(order.fraction)) // (per_unit * lot)
            if units <= 0:
                self._reject(book, order, "insufficient cash for one lot")
                return None
            need = math.copysign(units * lot, sign)
        else:
            need = order.size - order.filled  # type: ignore[operator]
            per_unit = adj + self._commission(need, price) / abs(need)
        if self._slip is not None:
            cap = self._slip.max_fill(v)
            if abs(need) > cap:
                if order.fraction is not None:  # the remainder waits for later bars as a unit order
                    order.size, order.fraction = need, None
                need = math.copysign(math.floor(cap / lot) * lot, need)
                if not need:
                    return None  # no volume to take this bar; stays pending
            if slippable:
                price = self._slip.adjust(price, need, v)
                adj = price * (1 + math.copysign(self._spread, sign))
                per_unit = adj + self._commission(need, price) / abs(need)
        filled = need
        if book.size * need < 0:  # opposite lots to close first, oldest first
            for open_lot in list(book.lots):
                if open_lot.size * need >= 0:
                    continue
                part = need if abs(need) < abs(open_lot.size) else -open_lot.size
                self._close(book, open_lot, part, price, i, t, order.id, "signal")
                need -= part
                if not need:
                    break
        opened = None
        if need and not order.close_position:
            if filled != need or order.fraction is None:  # lots were closed, or not yet measured
                available = self._available(book, price)
            if abs(need) * per_unit > available:
                self._reject(book, order, "insufficient cash")
                return None
            opened = self._open(book, order, need, adj, i, t)
        order.filled += filled
        remaining = (order.size - order.filled) if order.size is not None else 0.0
        if order.close_position and book.size:
            remaining = book.size
        if remaining:
            order.status = _PARTIAL
        else:
            order.status = _FILLED
            book.orders.remove(order)
        return opened

    def _fill_exit(self, book: Book, order: Order, price: float, i: int, t: int) -> None:
        trade = next((lot for lot in book.lots if lot.id == order.parent_trade), None)
        if trade is not None:
            part = math.copysign(min(abs(trade.size), abs(order.size)), order.size)  # type: ignore[arg-type]
            self._close(book, trade, part, price, i, t, order.id, "stop_loss" if order is trade.sl_order else "take_profit")
        order.status = OrderStatus.FILLED
        if order in book.orders:
            book.orders.remove(order)

    def _open(self, book: Book, order: Order, size: float, price: float, i: int, t: int) -> Trade:
        trade = Trade(id=self._next_trade_id, instrument=book.name, size=size, entry_bar=i, entry_ns=t,
                      entry_price=price, tag=order.tag)
        self._next_trade_id += 1
        book.lots.append(trade)
        commission = self._commission(size, price)
        self.balance -= commission
        book.recount()
        self.fills.append(Fill(order.id, book.name, i, t, size, price, commission))
        if order.sl is not None:  # stop-losses go first in the queue so they are checked first
            self.n_orders += 1
            trade.sl_order = Order(id=self.n_orders, instrument=book.name, size=-size, stop=order.sl, created_bar=i,
                                   created_ns=t, parent_trade=trade.id, tag=order.tag)
            book.orders.insert(0, trade.sl_order)
        if order.tp is not None:
            self.n_orders += 1
            trade.tp_order = Order(id=self.n_orders, instrument=book.name, size=-size, limit=order.tp, created_bar=i,
                                   created_ns=t, parent_trade=trade.id, tag=order.tag)
            book.orders.append(trade.tp_order)
        return trade

    def _close(self, book: Book, trade: Trade, size: float, price: float, i: int, t: int,
               order_id: int, reason: str) -> None:
        """Close ``-size`` of ``trade`` (``size`` has the opposite sign of ``trade.size``)."""
        if -size == trade.size:
            book.lots.remove(trade)
            if trade.sl_order is not None or trade.tp_order is not None:
                for child in (trade.sl_order, trade.tp_order):
                    if child is not None and child in book.orders:
                        child.status, child.reason = OrderStatus.CANCELLED, "trade closed"
                        book.orders.remove(child)
            closed = trade
        else:
            trade.size += size
            for child in (trade.sl_order, trade.tp_order):
                if child is not None:
                    child.size = -trade.size
            closed = Trade(id=trade.id, instrument=trade.instrument, size=-size, entry_bar=trade.entry_bar,
                           entry_ns=trade.entry_ns, entry_price=trade.entry_price, tag=trade.tag)
        closed.exit_bar, closed.exit_ns, closed.exit_price, closed.exit_reason = i, t, price, reason
        commission = self._commission(closed.size, price)
        self.balance += closed.size * (price - closed.entry_price) - commission
        closed.commission = commission + self._commission(closed.size, closed.entry_price)
        self.closed_trades.append(closed)
        book.recount()
        self.fills.append(Fill(order_id, book.name, i, t, size, price, commission,
                               "order" if reason == "signal" else reason))

    def close_lot(self, book: Book, lot: Trade, price: float, i: int, t: int, reason: str) -> None:
        """Close one whole lot outside the order flow (end of data, out of money)."""
        self._close(book, lot, -lot.size, price, i, t, -1, reason)

    def close_all(self, book: Book, price: float, i: int, t: int, reason: str) -> None:
        for lot in list(book.lots):
            self.close_lot(book, lot, price, i, t, reason)
