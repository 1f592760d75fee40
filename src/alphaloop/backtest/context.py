"""The strategy's view of a backtest: growing histories, indicators and order entry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.core.decisions import Decision
from alphaloop.core.errors import DataError, LookAheadError, StrategyError
from alphaloop.core.orders import Order, Position
from alphaloop.execution.broker import Book, SimulatedBroker
from alphaloop.strategy.context_base import FIELDS, ContextBase, order_terms
from alphaloop.strategy.services import Services


class _ListsOnDemand(dict):
    """Column name -> Python list, converted from the numpy column the first time it is asked for
    (lists index faster per element; most runs never touch most columns element by element)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        super().__init__()
        self._arrays = arrays

    def __missing__(self, key: str) -> list:
        values = self._arrays[key].tolist()
        self[key] = values
        return values


class InstrumentFeed:
    """One instrument's full columns (hidden from the strategy) and the histories it was handed.

    A history is a plain list that the engine extends by one value per bar: reading ``[-1]`` costs
    what reading a list costs, and no value from a later bar is ever in it.
    """

    def __init__(self, name: str, df: pd.DataFrame):
        self.name = name
        self.n = len(df)
        self.arrays = {f: df[f].to_numpy(dtype=float) for f in FIELDS}
        self.columns = _ListsOnDemand(self.arrays)
        if not isinstance(df.index, pd.DatetimeIndex):
            raise DataError("bars need a DatetimeIndex (load data with alphaloop.data.load_bars)", source=name)
        index = df.index if df.index.tz is not None else df.index.tz_localize("UTC")
        self.times_ns = index.tz_convert("UTC").as_unit("ns").asi8
        self.arrays["time"] = self.times_ns
        self.histories: dict[Any, list] = {}
        self.feeds: list[tuple[Callable[[Any], None], list]] = []  # (history.append, full column)
        self.i = -1  # index of the current bar
        self.pre_growth = False  # True while on_fill runs before this bar is appended to histories

    def frame(self) -> pd.DataFrame:
        """All bars as an OHLCV frame (for whole-series feature functions; never shown to a strategy)."""
        index = pd.DatetimeIndex(self.times_ns.view("datetime64[ns]"), name="time").tz_localize("UTC")
        return pd.DataFrame({f: self.arrays[f] for f in FIELDS}, index=index)

    def time(self, i: int) -> pd.Timestamp:
        return pd.Timestamp(int(self.times_ns[i]), tz="UTC")

    def history(self, key: Any, full: list) -> list:
        hist = self.histories.get(key)
        if hist is None:
            # asked for during this bar's fills (on_fill), before the histories grow by this bar
            hist = full[: self.i if self.pre_growth else self.i + 1]
            self.histories[key] = hist
            self.feeds.append((hist.append, full))
        return hist


def _same_prefix(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    both_nan = np.isnan(a) & np.isnan(b)
    close = np.isclose(a, b, rtol=1e-9, atol=1e-12)
    return bool(np.all(both_nan | close))


class BacktestContext(ContextBase):
    """Implements ``alphaloop.strategy.Context`` over a historical clock."""

    def __init__(self, broker: SimulatedBroker, feeds: list[InstrumentFeed], services: Services | None = None):
        self._broker = broker
        self._feeds = {f.name: f for f in feeds}
        self._primary = feeds[0]
        self._books = broker.book_by_name
        self._services = services or Services()
        self._feature_frames: dict[tuple[int, str], np.ndarray] = {}
        self.decisions: list[Decision] = []
        self.step = -1

    # ---- clock and data ------------------------------------------------------------------------
    @property
    def i(self) -> int:
        return self._primary.i

    @property
    def time(self) -> pd.Timestamp:
        f = self._primary
        return f.time(max(f.i, 0))

    @property
    def time_ns(self) -> int:
        f = self._primary
        return f.columns["time"][max(f.i, 0)]

    def _field_history(self, feed: Any, field: str) -> list:
        return feed.history(field, feed.columns[field])

    def indicator(self, fn: Callable[..., Any], *inputs: Any, instrument: str | None = None,
                  **kwargs: Any) -> list | tuple[list, ...]:
        """Compute ``fn`` over the whole series once, and hand out a history that grows bar by bar.

        String inputs name a field ("close"). ``fn`` is checked for look-ahead: its output on the
        first half of the data must equal the first half of its output on all the data.
        """
        feed = self._feed(instrument)
        label = getattr(fn, "__name__", repr(fn))

        def call(n: int) -> list[np.ndarray]:
            args = [feed.arrays[a][:n] if isinstance(a, str) and a in feed.arrays else a for a in inputs]
            out = fn(*args, **kwargs)
            outs = list(out) if isinstance(out, tuple) else [out]
            return [np.asarray(o, dtype=float) for o in outs]

        full = call(feed.n)
        for o in full:
            if o.shape != (feed.n,):
                raise StrategyError(f"indicator {label} returned shape {o.shape}, expected ({feed.n},)")
        cut = feed.n // 2  # any use of later bars shows up at the cut, wherever it is
        if cut > 0 and not all(_same_prefix(p, o[:cut]) for p, o in zip(call(cut), full)):
            raise LookAheadError(f"indicator {label}{inputs} uses future bars: its value changes when "
                                 f"bars after {cut} are added")
        key = (label, inputs, tuple(sorted(kwargs.items())))
        hists = [feed.history((key, j), o.tolist()) for j, o in enumerate(full)]
        return hists[0] if len(hists) == 1 else tuple(hists)

    # ---- orders --------------------------------------------------------------------------------
    def _order(self, sign: float, size: float | None, fraction: float | None, instrument: str | None,
               limit: float | None, stop: float | None, sl: float | None, tp: float | None, tif: str,
               expires_at: pd.Timestamp | None, tag: str | None) -> Order:
        feed = self._primary if instrument is None else self._feed(instrument)
        size, fraction, tif_value = order_terms(sign, size, fraction, tif)
        i = feed.i
        order = Order(0, feed.name, size, fraction, limit, stop, sl, tp, tif_value, expires_at,
                      created_bar=i, created_ns=feed.columns["time"][i], tag=tag)
        return self._broker.submit(order, feed.columns["close"][i])

    def close_position(self, instrument: str | None = None, tag: str | None = None) -> Order | None:
        feed = self._feed(instrument)
        book: Book = self._books[feed.name]
        if not book.size:
            return None
        order = Order(id=0, instrument=feed.name, close_position=True, tag=tag, created_bar=feed.i,
                      created_ns=feed.columns["time"][feed.i])
        return self._broker.submit(order, feed.columns["close"][feed.i])

    def cancel(self, order: Order) -> None:
        self._broker.cancel(order)

    def position(self, instrument: str | None = None) -> float:
        return self._books[self._feed(instrument).name].size

    def position_info(self, instrument: str | None = None) -> Position:
        self._mark()
        return self._broker.position(self._feed(instrument).name)

    @property
    def orders(self) -> list[Order]:
        return self._broker.pending_orders()

    @property
    def services(self) -> Services:
        return self._services

    def feature_row(self, fn: Callable[[pd.DataFrame], pd.DataFrame], instrument: str | None = None) -> np.ndarray:
        """Computed once over all bars (checked for look-ahead on the first half), then read per bar."""
        feed = self._feed(instrument)
        key = (id(fn), feed.name)
        matrix = self._feature_frames.get(key)
        if matrix is None:
            frame = feed.frame()
            full = np.asarray(fn(frame), dtype=float)
            cut = feed.n // 2
            if cut > 0 and not _same_prefix(np.asarray(fn(frame.iloc[:cut]), dtype=float), full[:cut]):
                raise LookAheadError(f"feature function {getattr(fn, '__name__', fn)!r} uses future bars: its rows "
                                     f"change when bars after {cut} are added")
            matrix = self._feature_frames[key] = full
        return matrix[feed.i]

    def record_decision(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def _mark(self) -> None:
        # the per-bar loop leaves book prices alone; mark every book at its latest close on demand
        for feed in self._feeds.values():
            if feed.i >= 0:
                self._books[feed.name].price = feed.columns["close"][feed.i]

    @property
    def cash(self) -> float:
        return self._broker.cash

    @property
    def equity(self) -> float:
        self._mark()
        return self._broker.equity()
