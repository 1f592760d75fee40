"""The strategy's view of a live run: the ``Context`` protocol over bars that arrive one at a time.

Histories are plain lists that grow by one value per bar, exactly as the backtester's (``[-1]`` is
the current bar; no later value exists yet). Orders are validated here with the broker's own rules
(so a bad order raises in the strategy, as in a backtest) and then sent on the orders stream;
positions, cash and equity are kept from the broker's execution reports (:mod:`.account`).

Engine-side methods (``begin_bar``, ``grow``, ...) are called by the strategy engine, never by a
strategy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.core.decisions import Decision
from alphaloop.core.errors import OrderError, StrategyError
from alphaloop.core.market import Bar
from alphaloop.core.orders import Order, Position
from alphaloop.execution.broker import BrokerConfig, SimulatedBroker
from alphaloop.live.account import Account
from alphaloop.live.indicators import LiveIndicator, make_indicator
from alphaloop.strategy.context_base import FIELDS, ContextBase, order_terms
from alphaloop.strategy.services import Services

CANCELLED_BY_STRATEGY = "cancelled by strategy"


class _Feed:
    """One instrument's histories, its current bar and its indicators."""

    __slots__ = ("close_now", "cols", "current", "i", "indicators", "name", "time_now")

    def __init__(self, name: str):
        self.name = name
        self.cols: dict[str, list] = {f: [] for f in (*FIELDS, "time")}
        self.current: dict[str, Any] | None = None  # the current bar's values, until histories grow
        self.indicators: dict[Any, LiveIndicator] = {}
        self.i = -1  # index of the current bar (set when the bar arrives, before its fills)
        self.time_now = 0
        self.close_now = math.nan

    def array(self, name: str) -> np.ndarray:
        return np.asarray(self.cols[name], dtype=np.int64 if name == "time" else float)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Each past bar's values (for an indicator declared after bars arrived)."""
        cols = self.cols
        for k in range(len(cols["time"])):
            yield {name: column[k] for name, column in cols.items()}

    def frame(self, window: int | None) -> pd.DataFrame:
        """The bars so far as an OHLCV frame, the current bar included even before histories grow
        (as the backtester's whole-data frame does during ``on_fill``)."""
        cols = {name: list(column) for name, column in self.cols.items()} if self.current else self.cols
        if self.current:
            for name, value in self.current.items():
                cols[name].append(value)
        start = 0 if window is None else max(0, len(cols["time"]) - window)
        times = np.asarray(cols["time"][start:], dtype=np.int64)
        index = pd.DatetimeIndex(times.view("datetime64[ns]"), name="time").tz_localize("UTC")
        return pd.DataFrame({f: np.asarray(cols[f][start:], dtype=float) for f in FIELDS}, index=index)


class LiveContext(ContextBase):
    """Implements ``alphaloop.strategy.Context`` for a live (paper) run."""

    def __init__(self, instruments: list[str], config: BrokerConfig, *, services: Services | None = None,
                 send: Callable[[str, Order | int, float], None] | None = None,
                 on_decision: Callable[[Decision], None] | None = None, feature_window: int | None = None):
        if not instruments:
            raise StrategyError("a live context needs at least one instrument")
        if feature_window is not None and feature_window < 1:
            raise StrategyError(f"feature_window must be >= 1 bars (or None: all history), got {feature_window}")
        self._feeds = {name: _Feed(name) for name in instruments}
        self._primary = self._feeds[instruments[0]]
        self.account = Account(instruments, config.initial_cash)
        self._checker = SimulatedBroker(instruments, config)  # validates orders with the broker's rules
        self._services = services or Services(concurrent=True)
        self._send = send or (lambda kind, what, reference: None)
        self._on_decision = on_decision or (lambda d: None)
        self._feature_window = feature_window
        self._feature_rows: dict[tuple[int, str], tuple[tuple[int, int], np.ndarray]] = {}
        self.indicator_errors: list[str] = []  # failures while growing histories, for the engine

    # ---- clock and data ------------------------------------------------------------------------
    @property
    def i(self) -> int:
        return self._primary.i

    @property
    def time(self) -> pd.Timestamp:
        """The primary instrument's current bar time; NaT before the first bar (a backtest would
        show the first bar's time, which live is not known yet)."""
        f = self._primary
        return pd.Timestamp(f.time_now, tz="UTC") if f.i >= 0 else pd.NaT

    @property
    def time_ns(self) -> int:
        """:attr:`time` as ns since the epoch (NaT's value before the first bar)."""
        f = self._primary
        return f.time_now if f.i >= 0 else pd.NaT.value

    def _field_history(self, feed: Any, field: str) -> list:
        return feed.cols[field]

    def indicator(self, fn: Callable[..., Any], *inputs: Any, instrument: str | None = None,
                  **kwargs: Any) -> list | tuple[list, ...]:
        """A history of ``fn``'s values that grows bar by bar: the streaming twin for
        :mod:`alphaloop.indicators`' functions (O(1) per bar), else ``fn`` recomputed over the
        history so far each bar (O(n) per bar). Declared late, it is filled for past bars at once."""
        feed = self._feed(instrument)
        label = getattr(fn, "__name__", repr(fn))
        key: Any = (label, inputs, tuple(sorted(kwargs.items())))
        try:
            hash(key)
        except TypeError:  # array inputs: no caching by value
            key = (label, id(fn), tuple(id(a) for a in inputs), id(kwargs))
        indicator = feed.indicators.get(key)
        if indicator is None:
            indicator = make_indicator(fn, inputs, kwargs)
            indicator.catch_up(feed.rows(), feed.array)
            feed.indicators[key] = indicator
        hists = indicator.histories
        return hists[0] if len(hists) == 1 else tuple(hists)

    # ---- orders --------------------------------------------------------------------------------
    def _order(self, sign: float, size: float | None, fraction: float | None, instrument: str | None,
               limit: float | None, stop: float | None, sl: float | None, tp: float | None, tif: str,
               expires_at: pd.Timestamp | None, tag: str | None) -> Order:
        feed = self._primary if instrument is None else self._feed(instrument)
        size, fraction, tif_value = order_terms(sign, size, fraction, tif)
        order = Order(self.account.next_order_id(), feed.name, size, fraction, limit, stop, sl, tp, tif_value,
                      expires_at, created_bar=feed.i, created_ns=feed.time_now, tag=tag)
        return self._submit(order, feed)

    def _submit(self, order: Order, feed: _Feed) -> Order:
        if feed.i < 0:
            raise OrderError(f"{feed.name}: no bar yet, so no price to check the order against")
        probe = dataclasses.replace(order)
        try:
            self._checker.submit(probe, feed.close_now)  # raises OrderError exactly as the broker would
        finally:
            self._checker.book_by_name[order.instrument].orders.clear()
        self.account.add_order(order)
        self._send("order", order, feed.close_now)  # the broker checks brackets against the same price
        return order

    def close_position(self, instrument: str | None = None, tag: str | None = None) -> Order | None:
        feed = self._feed(instrument)
        if not self.account.book_by_name[feed.name].size:
            return None
        order = Order(id=self.account.next_order_id(), instrument=feed.name, close_position=True, tag=tag,
                      created_bar=feed.i, created_ns=feed.time_now)
        return self._submit(order, feed)

    def cancel(self, order: Order) -> None:
        """Cancelled at once in this view (as in a backtest); the broker is told on the orders stream."""
        if self.account.cancel_order(order, CANCELLED_BY_STRATEGY):
            self._send("cancel", order.id, math.nan)

    def position(self, instrument: str | None = None) -> float:
        return self.account.book_by_name[self._feed(instrument).name].size

    def position_info(self, instrument: str | None = None) -> Position:
        return self.account.position(self._feed(instrument).name)

    @property
    def orders(self) -> list[Order]:
        return self.account.pending_orders()

    @property
    def services(self) -> Services:
        return self._services

    def feature_row(self, fn: Callable[[pd.DataFrame], pd.DataFrame], instrument: str | None = None) -> np.ndarray:
        """The last row of ``fn`` over the bars so far (or the trailing ``feature_window`` bars),
        computed on demand: O(n) per call, once per bar. With a window, features that remember
        further back (EMAs) differ slightly from the backtester's, which sees all history."""
        feed = self._feed(instrument)
        key = (id(fn), feed.name)
        stamp = (feed.i, len(feed.cols["time"]))
        cached = self._feature_rows.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        if feed.i < 0:
            raise StrategyError(f"{feed.name}: no bar yet, so no feature row")
        row = np.asarray(fn(feed.frame(self._feature_window)), dtype=float)[-1]
        self._feature_rows[key] = (stamp, row)
        return row

    def record_decision(self, decision: Decision) -> None:
        """Stored by the recorder (if any) and published on the decisions stream."""
        self._on_decision(decision)

    @property
    def cash(self) -> float:
        return self.account.cash

    @property
    def equity(self) -> float:
        return self.account.equity()

    # ---- engine side ---------------------------------------------------------------------------
    def begin_bar(self, bar: Bar) -> None:
        """A bar arrived: it becomes the current bar (orders sent from ``on_fill`` are stamped with
        it, as in the backtester) and marks the account; histories grow in :meth:`grow`."""
        feed = self._feeds[bar.instrument]
        feed.i += 1
        feed.time_now = int(bar.time.value)
        feed.close_now = bar.close
        feed.current = {"open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close,
                        "volume": bar.volume, "time": feed.time_now}
        self.account.mark(bar.instrument, bar.close)

    def grow(self, bar: Bar) -> None:
        """Append the bar to its instrument's histories and extend every indicator by one value."""
        feed = self._feeds[bar.instrument]
        values, feed.current = feed.current, None
        assert values is not None, "grow() without begin_bar()"
        for name, value in values.items():
            feed.cols[name].append(value)
        for indicator in feed.indicators.values():
            try:
                indicator.update(values, feed.array)
            except Exception as e:  # an indicator failing on one bar must not stop the run
                self.indicator_errors.append(f"{bar.instrument} indicator {indicator.label} failed at "
                                             f"{bar.time}: {type(e).__name__}: {e}")
                for hist in indicator.histories:  # keep every history as long as the bar history
                    if len(hist) < len(feed.cols["close"]):
                        hist.append(math.nan)
