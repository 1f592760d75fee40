"""What travels on the live pipeline's streams: stream names, producer-assigned ids and payloads.

Payloads are plain JSON objects, so the same messages run over the in-memory bus and Redis Streams.
Floats keep every bit through JSON (Python writes the shortest text that reads back as the same
double), which is what lets a live run reproduce a backtest exactly. Times are ns since the epoch,
UTC.

| stream | kinds | producer -> consumer |
|---|---|---|
| bars | ``bar`` | market data replay -> pump (hands each bar to broker, engine, pattern stage) |
| signals | ``signal`` | pattern stage -> strategy engine |
| orders | ``order``, ``cancel`` | strategy engine -> paper broker |
| fills | ``fill``, ``order_state``, ``book``, ``account`` | paper broker -> strategy engine (execution reports) |
| decisions | ``decision`` | strategy engine -> anyone listening |
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import pandas as pd

from alphaloop.bus import Envelope
from alphaloop.core.decisions import Decision
from alphaloop.core.market import Bar, Direction, Signal
from alphaloop.core.orders import Fill, Order, OrderStatus, TimeInForce

BAR, SIGNAL, ORDER, CANCEL = "bar", "signal", "order", "cancel"
FILL, ORDER_STATE, BOOK, ACCOUNT, DECISION = "fill", "order_state", "book", "account", "decision"

ACTIVE = (OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True, slots=True)
class Streams:
    """Stream names; ``Streams.prefixed("run42:")`` keeps several runs apart on one Redis."""

    bars: str = "bars"
    signals: str = "signals"
    orders: str = "orders"
    fills: str = "fills"
    decisions: str = "decisions"

    @classmethod
    def prefixed(cls, prefix: str) -> Streams:
        return cls(*(f"{prefix}{name}" for name in ("bars", "signals", "orders", "fills", "decisions")))


class IdSource:
    """Producer-assigned message ids ``RUN:PRODUCER:N``: unique per run, kept on redelivery."""

    __slots__ = ("_n", "_prefix")

    def __init__(self, run_id: str, producer: str):
        self._prefix = f"{run_id}:{producer}:"
        self._n = 0

    def __call__(self) -> str:
        self._n += 1
        return f"{self._prefix}{self._n}"


class SeenIds:
    """The last ``capacity`` message ids, to drop redeliveries (the bus delivers at least once).

    Bounded so an endless run does not grow without limit; a redelivery older than that many
    messages is not expected from either bus."""

    __slots__ = ("_order", "_set")

    def __init__(self, capacity: int = 200_000):
        self._set: set[str] = set()
        self._order: deque[str] = deque(maxlen=capacity)

    def add(self, message_id: str) -> bool:
        """Remember the id; False when it was seen already."""
        if message_id in self._set:
            return False
        if len(self._order) == self._order.maxlen:
            self._set.discard(self._order[0])
        self._order.append(message_id)
        self._set.add(message_id)
        return True


def envelope(kind: str, message_id: str, payload: dict[str, Any], source: str) -> Envelope:
    return Envelope(kind=kind, id=message_id, payload=payload, source=source)


# ---- bars ----------------------------------------------------------------------------------------
def bar_payload(bar: Bar, last: bool = False) -> dict[str, Any]:
    """``last`` marks an instrument's final bar (known for files): its positions settle after it."""
    return {"instrument": bar.instrument, "time_ns": int(bar.time.value), "open": float(bar.open),
            "high": float(bar.high), "low": float(bar.low), "close": float(bar.close),
            "volume": float(bar.volume), "last": bool(last)}


def bar_from_payload(p: dict[str, Any]) -> tuple[Bar, bool]:
    """Raises ValueError/TypeError/KeyError on a malformed payload (the caller counts it)."""
    t = p["time_ns"]
    if not isinstance(t, int) or isinstance(t, bool):
        raise TypeError(f"time_ns must be an integer, got {t!r}")
    values = [p[f] for f in ("open", "high", "low", "close", "volume")]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise TypeError(f"bar values must be numbers, got {values!r}")
    o, h, lo, c, v = (float(x) for x in values)
    return Bar(str(p["instrument"]), pd.Timestamp(t, tz="UTC"), o, h, lo, c, v), bool(p.get("last", False))


def bar_problem(bar: Bar) -> str | None:
    """Why a bar cannot be used (the checks load_bars does for files), or None."""
    values = (bar.open, bar.high, bar.low, bar.close, bar.volume)
    if not all(math.isfinite(v) for v in values):
        return f"non-finite value in {values}"
    if min(bar.open, bar.high, bar.low, bar.close) <= 0:
        return "non-positive price"
    if bar.high < bar.low or not (bar.low <= bar.open <= bar.high and bar.low <= bar.close <= bar.high):
        return f"inconsistent range: open {bar.open}, high {bar.high}, low {bar.low}, close {bar.close}"
    if bar.volume < 0:
        return f"negative volume {bar.volume}"
    return None


# ---- signals -------------------------------------------------------------------------------------
def signal_payload(s: Signal) -> dict[str, Any]:
    return {"instrument": s.instrument, "time_ns": int(s.time.value), "pattern": s.pattern,
            "direction": str(s.direction), "strength": float(s.strength),
            "features": {k: float(v) for k, v in s.features.items()}, "bar": s.bar}


def signal_from_payload(p: dict[str, Any]) -> Signal:
    return Signal(str(p["instrument"]), pd.Timestamp(int(p["time_ns"]), tz="UTC"), str(p["pattern"]),
                  Direction(p["direction"]), float(p["strength"]), dict(p.get("features") or {}), p.get("bar"))


# ---- orders --------------------------------------------------------------------------------------
_ORDER_NUMBERS = ("size", "fraction", "limit", "stop", "sl", "tp")


def order_payload(order: Order, **extra: Any) -> dict[str, Any]:
    """The whole order (state included): a new order, or an execution report of its state."""
    p = {"id": order.id, "instrument": order.instrument, **{k: getattr(order, k) for k in _ORDER_NUMBERS},
         "tif": str(order.tif), "expires_at_ns": None if order.expires_at is None else int(order.expires_at.value),
         "close_position": order.close_position, "tag": order.tag, "created_bar": order.created_bar,
         "created_ns": int(order.created_ns), "parent_trade": order.parent_trade, "status": str(order.status),
         "filled": order.filled, "reason": order.reason}
    p.update(extra)
    return p


def order_from_payload(p: dict[str, Any]) -> Order:
    expires = p.get("expires_at_ns")
    return Order(
        id=int(p["id"]), instrument=str(p["instrument"]),
        **{k: (None if p.get(k) is None else float(p[k])) for k in _ORDER_NUMBERS},
        tif=TimeInForce(p.get("tif", "gtc")), expires_at=None if expires is None else pd.Timestamp(int(expires), tz="UTC"),
        close_position=bool(p.get("close_position", False)), tag=p.get("tag"),
        created_bar=int(p.get("created_bar", -1)), created_ns=int(p.get("created_ns", 0)),
        parent_trade=p.get("parent_trade"), status=OrderStatus(p.get("status", "pending")),
        filled=float(p.get("filled", 0.0)), reason=p.get("reason"))


def apply_order_state(order: Order, p: dict[str, Any]) -> None:
    """Copy what the broker may change on an order (fills, status, a triggered stop, a partially
    filled relative order turned into units, a bracket child following its trade's size)."""
    order.status = OrderStatus(p["status"])
    order.filled = float(p["filled"])
    order.reason = p.get("reason")
    order.size = None if p.get("size") is None else float(p["size"])
    order.fraction = None if p.get("fraction") is None else float(p["fraction"])
    order.stop = None if p.get("stop") is None else float(p["stop"])


def order_snapshot(order: Order) -> tuple[Any, ...]:
    """The fields :func:`apply_order_state` copies: a change in them is worth a report."""
    return order.status, order.filled, order.reason, order.size, order.fraction, order.stop


# ---- fills ---------------------------------------------------------------------------------------
def fill_payload(fill: Fill, trade_id: int, opened: bool, pnl: float | None) -> dict[str, Any]:
    """A fill, with the trade (lot) it opened or closed, so the strategy's account can be kept with
    the broker's own arithmetic; ``pnl`` is the closed part's P&L (both commissions in)."""
    return {"order_id": fill.order_id, "instrument": fill.instrument, "bar": fill.bar, "time_ns": int(fill.time_ns),
            "size": fill.size, "price": fill.price, "commission": fill.commission,
            "reason": getattr(fill, "reason", "order"), "trade_id": trade_id, "opened": opened, "pnl": pnl}


def fill_from_payload(p: dict[str, Any]) -> Fill:
    return Fill(int(p["order_id"]), str(p["instrument"]), int(p["bar"]), int(p["time_ns"]), float(p["size"]),
                float(p["price"]), float(p["commission"]), str(p.get("reason", "order")))


def decision_payload(decision: Decision) -> dict[str, Any]:
    return decision.to_dict()
