"""What every Context shares, whatever its clock: instruments, the bar fields, and order entry
(``buy``/``sell`` and the checks of their arguments), so that the backtest and live contexts show a
strategy the same data and refuse the same orders for the same reasons.
"""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from typing import Any

import pandas as pd

from alphaloop.core.errors import OrderError, StrategyError
from alphaloop.core.orders import Order, TimeInForce

FIELDS = ("open", "high", "low", "close", "volume")
DEFAULT_FRACTION = 1 - sys.float_info.epsilon  # backtesting.py's default buy()/sell(): all available equity
_TIF = {t.value: t for t in TimeInForce}


def order_terms(sign: float, size: float | None, fraction: float | None,
                tif: str) -> tuple[float | None, float | None, TimeInForce]:
    """Signed units or signed fraction (one of them), and the time in force; or why not."""
    if size is None:
        if fraction is None:
            fraction = DEFAULT_FRACTION
        elif not (isinstance(fraction, int | float) and math.isfinite(fraction) and 0 < fraction < 1):
            raise OrderError(f"fraction must be within (0, 1) (the side is given by buy/sell), got {fraction!r}")
        fraction = sign * fraction
    elif fraction is not None:
        raise OrderError("give size (units) or fraction (of equity), not both")
    elif not (isinstance(size, int | float) and math.isfinite(size) and size > 0):
        # never size an order from NaN: a NaN from a warm-up indicator stops here
        raise OrderError(f"size must be a positive finite number (the side is given by buy/sell), got {size!r}")
    else:
        size = sign * size
    tif_value = _TIF.get(tif)
    if tif_value is None:
        raise OrderError(f"unknown time in force {tif!r}; use one of {', '.join(_TIF)}")
    return size, fraction, tif_value


class ContextBase(ABC):
    """The shared half of a Context. Subclasses keep ``_feeds`` (name -> feed with a ``name``) and
    ``_primary``, and implement ``_field_history`` (a feed's growing list of a field) and ``_order``."""

    _feeds: dict[str, Any]
    _primary: Any

    @property
    def instrument(self) -> str:
        return self._primary.name

    @property
    def instruments(self) -> list[str]:
        return list(self._feeds)

    def _feed(self, instrument: str | None) -> Any:
        if instrument is None:
            return self._primary
        try:
            return self._feeds[instrument]
        except KeyError:
            raise StrategyError(f"unknown instrument {instrument!r}; known: {', '.join(self._feeds)}") from None

    def history(self, field: str, instrument: str | None = None) -> list:
        feed = self._feed(instrument)
        if field not in FIELDS:
            raise StrategyError(f"unknown field {field!r}; fields: {', '.join(FIELDS)}")
        return self._field_history(feed, field)

    open = property(lambda self: self.history("open"))
    high = property(lambda self: self.history("high"))
    low = property(lambda self: self.history("low"))
    close = property(lambda self: self.history("close"))
    volume = property(lambda self: self.history("volume"))

    @abstractmethod
    def _field_history(self, feed: Any, field: str) -> list: ...

    @abstractmethod
    def _order(self, sign: float, size: float | None, fraction: float | None, instrument: str | None,
               limit: float | None, stop: float | None, sl: float | None, tp: float | None, tif: str,
               expires_at: pd.Timestamp | None, tag: str | None) -> Order:
        """Build the order (``order_terms`` checks the arguments) and route it to the broker."""

    def buy(self, size: float | None = None, *, fraction: float | None = None, instrument: str | None = None,
            limit: float | None = None, stop: float | None = None, sl: float | None = None,
            tp: float | None = None, tif: str = "gtc", expires_at: pd.Timestamp | None = None,
            tag: str | None = None) -> Order:
        return self._order(1.0, size, fraction, instrument, limit, stop, sl, tp, tif, expires_at, tag)

    def sell(self, size: float | None = None, *, fraction: float | None = None, instrument: str | None = None,
             limit: float | None = None, stop: float | None = None, sl: float | None = None,
             tp: float | None = None, tif: str = "gtc", expires_at: pd.Timestamp | None = None,
             tag: str | None = None) -> Order:
        return self._order(-1.0, size, fraction, instrument, limit, stop, sl, tp, tif, expires_at, tag)


__all__ = ["DEFAULT_FRACTION", "FIELDS", "ContextBase", "order_terms"]
