"""Order entry as every Context offers it: ``buy``/``sell`` and the checks of their arguments.

Shared by the backtest and live contexts so that an order a strategy may send is the same order,
refused for the same reasons, under either clock.
"""

from __future__ import annotations

import math
import sys

import pandas as pd

from alphaloop.core.errors import OrderError
from alphaloop.core.orders import Order, TimeInForce

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


class OrderEntry:
    """``buy`` and ``sell`` for a context that implements ``_order``."""

    def _order(self, sign: float, size: float | None, fraction: float | None, instrument: str | None,
               limit: float | None, stop: float | None, sl: float | None, tp: float | None, tif: str,
               expires_at: pd.Timestamp | None, tag: str | None) -> Order:
        raise NotImplementedError  # each context routes the order to its broker

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


__all__ = ["DEFAULT_FRACTION", "OrderEntry", "order_terms"]
