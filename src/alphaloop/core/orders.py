"""Orders, fills, trades and positions.

Sizes are signed: positive buys / long, negative sells / short. Prices are per unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pandas as pd


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    GTC = "gtc"  # good till cancelled
    DAY = "day"  # expires when the UTC date of a bar differs from the submission bar's
    IOC = "ioc"  # immediate or cancel: may fill on the first bar it meets, else cancelled
    GTD = "gtd"  # good till ``expires_at``


class OrderStatus(StrEnum):
    PENDING = "pending"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"


@dataclass(slots=True, eq=False)
class Order:
    """An instruction to the broker.

    Exactly one of ``size`` (units, signed) and ``fraction`` (of available equity, signed, sized at
    fill time the way backtesting.py sizes relative orders) is set, unless ``close_position`` is set:
    then the order closes whatever position the instrument has when it fills.
    ``sl``/``tp`` attach a stop-loss and take-profit to the trade the order opens.
    """

    id: int
    instrument: str
    size: float | None = None
    fraction: float | None = None
    limit: float | None = None
    stop: float | None = None
    sl: float | None = None
    tp: float | None = None
    tif: TimeInForce = TimeInForce.GTC
    expires_at: pd.Timestamp | None = None
    close_position: bool = False
    tag: str | None = None
    created_bar: int = -1
    created_ns: int = 0  # time of the bar it was sent on, ns since the epoch, UTC
    parent_trade: int | None = None  # set on the SL/TP child orders of a trade
    status: OrderStatus = OrderStatus.PENDING
    filled: float = 0.0
    reason: str | None = None

    @property
    def type(self) -> OrderType:
        if self.stop is not None:
            return OrderType.STOP_LIMIT if self.limit is not None else OrderType.STOP
        return OrderType.LIMIT if self.limit is not None else OrderType.MARKET

    @property
    def is_buy(self) -> bool:
        sized = self.size if self.size is not None else self.fraction
        return bool(sized is not None and sized > 0)


@dataclass(slots=True)  # not frozen: frozen dataclasses pay a setattr call per field, per fill
class Fill:
    order_id: int
    instrument: str
    bar: int
    time_ns: int  # ns since the epoch, UTC (integers keep the per-bar loop free of Timestamp objects)
    size: float
    price: float
    commission: float
    reason: str = "order"  # why it filled: order, stop_loss, take_profit, end_of_data, out_of_money

    @property
    def time(self) -> pd.Timestamp:
        return pd.Timestamp(self.time_ns, tz="UTC")


@dataclass(slots=True, eq=False)
class Trade:
    """A round trip: a lot opened by one fill and closed (possibly in parts) by later fills.

    ``pnl`` = size * (exit - entry) - commissions of entry and exit, as backtesting.py reports it.
    """

    id: int
    instrument: str
    size: float
    entry_bar: int
    entry_ns: int
    entry_price: float
    exit_bar: int | None = None
    exit_ns: int | None = None
    exit_price: float | None = None
    commission: float = 0.0
    tag: str | None = None
    exit_reason: str | None = None
    sl_order: Order | None = field(default=None, repr=False)
    tp_order: Order | None = field(default=None, repr=False)

    @property
    def entry_time(self) -> pd.Timestamp:
        return pd.Timestamp(self.entry_ns, tz="UTC")

    @property
    def exit_time(self) -> pd.Timestamp | None:
        return None if self.exit_ns is None else pd.Timestamp(self.exit_ns, tz="UTC")

    @property
    def pnl(self) -> float:
        if self.exit_price is None:
            return float("nan")
        return self.size * (self.exit_price - self.entry_price) - self.commission

    @property
    def return_pct(self) -> float:
        if self.exit_price is None:
            return float("nan")
        gross = (self.exit_price / self.entry_price - 1.0) * (1 if self.size > 0 else -1)
        return 100.0 * (gross - self.commission / (abs(self.size) * self.entry_price))


@dataclass(frozen=True, slots=True)
class Position:
    """A snapshot of one instrument's holding."""

    instrument: str
    size: float
    avg_price: float
    market_price: float
    realized_pnl: float

    @property
    def market_value(self) -> float:
        return self.size * self.market_price

    @property
    def unrealized_pnl(self) -> float:
        return self.size * (self.market_price - self.avg_price)
