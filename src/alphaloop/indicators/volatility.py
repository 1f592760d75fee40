"""Volatility indicators: true range, ATR (Wilder), Bollinger Bands, rolling volatility of log returns.

ATR copies TA-Lib: seeded with the plain average of the first ``n`` true ranges (the first bar
has none), then ``prev = (prev * (n - 1) + tr) / n``. Bollinger Bands use pandas' rolling mean
(as :func:`sma`) and an accurate population (ddof=0) rolling standard deviation, which the
streaming form replays bit for bit; they agree with TA-Lib's BBANDS to rounding (a flat window
gives exactly zero width, as in TA-Lib).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from alphaloop.indicators import _kernels
from alphaloop.indicators._rolling import RollingMean, RollingStd
from alphaloop.indicators._validation import (
    NAN,
    check_period,
    check_real,
    leading,
    output,
    prepare,
    skip_or_raise,
)
from alphaloop.indicators.errors import IndicatorError

Series = Sequence[float] | np.ndarray


class BBandsResult(NamedTuple):
    upper: np.ndarray | float
    middle: np.ndarray | float
    lower: np.ndarray | float


# ----------------------------------------------------------------------------- true range / ATR

def _true_range(high: float, low: float, prev_close: float) -> float:
    tr = high - low
    t = abs(high - prev_close)
    if t > tr:
        tr = t
    t = abs(low - prev_close)
    if t > tr:
        tr = t
    return tr


def true_range(high: Series, low: Series, close: Series) -> np.ndarray:
    """max(high - low, |high - prev close|, |low - prev close|); NaN on the first bar (TA-Lib TRANGE)."""
    start, (h, lo, c) = prepare(high=high, low=low, close=close)
    out = output(len(h), start)
    _kernels.true_range(h[start:], lo[start:], c[start:], out[start:])
    return out


class TrueRange:
    """Streaming true range, identical to :func:`true_range`; ``update(high, low, close)``."""

    __slots__ = ("_prev_c", "value")

    def __init__(self) -> None:
        self._prev_c = NAN
        self.value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        prev = self._prev_c
        if high - high != 0.0 or low - low != 0.0 or close - close != 0.0:
            return skip_or_raise(self, prev == prev, high, low, close)
        self._prev_c = close
        if prev != prev:
            return NAN
        self.value = v = _true_range(high, low, prev)
        return v


def atr(high: Series, low: Series, close: Series, n: int = 14) -> np.ndarray:
    """Wilder's Average True Range (TA-Lib ATR). First value at index ``n``."""
    n = check_period("n", n)
    start, (h, lo, c) = prepare(high=high, low=low, close=close)
    out = output(len(h), start)
    _kernels.atr(h[start:], lo[start:], c[start:], n, out[start:])
    return out


class ATR:
    """Streaming ATR, identical to :func:`atr`; ``update(high, low, close)``."""

    __slots__ = ("_count", "_total", "_tr", "n", "value")

    def __init__(self, n: int = 14):
        self.n = check_period("n", n)
        self._tr = TrueRange()
        self._count = 0
        self._total = 0.0
        self.value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        tr = self._tr.update(high, low, close)  # validates the input before any state changes
        if tr != tr:
            return NAN
        n = self.n
        self._count = count = self._count + 1
        if count > n:
            self.value = v = (self.value * (n - 1) + tr) / n
            return v
        self._total += tr
        if count < n:
            return NAN
        self.value = v = self._total / n
        return v


# ----------------------------------------------------------------------------- Bollinger Bands

def _check_bbands(n: int, nbdevup: float, nbdevdn: float) -> tuple[int, float, float]:
    return check_period("n", n, 2), check_real("nbdevup", nbdevup), check_real("nbdevdn", nbdevdn)


def bbands(close: Series, n: int = 20, nbdevup: float = 2.0, nbdevdn: float = 2.0) -> BBandsResult:
    """Bollinger Bands (TA-Lib's defaults): middle = SMA(n), bands = middle +/- k * population std."""
    n, up, dn = _check_bbands(n, nbdevup, nbdevdn)
    _, (x,) = prepare(close=close)
    start = leading(x)
    middle = pd.Series(x).rolling(n).mean().to_numpy(copy=True)
    std = output(len(x), start)
    _kernels.rolling_std(x[start:], n, 0, std[start:])
    return BBandsResult(middle + up * std, middle, middle - dn * std)


class BBands:
    """Streaming Bollinger Bands, identical to :func:`bbands`; ``update`` returns a :class:`BBandsResult`."""

    __slots__ = ("_mean", "_started", "_std", "n", "nbdevdn", "nbdevup", "std", "value")

    _EMPTY = BBandsResult(NAN, NAN, NAN)

    def __init__(self, n: int = 20, nbdevup: float = 2.0, nbdevdn: float = 2.0):
        self.n, self.nbdevup, self.nbdevdn = _check_bbands(n, nbdevup, nbdevdn)
        self._mean, self._std = RollingMean(self.n), RollingStd(self.n, 0)
        self._started = False
        self.std = NAN  # the population standard deviation behind the last bands
        self.value = self._EMPTY

    def update(self, x: float) -> BBandsResult:
        if x - x != 0.0:
            skip_or_raise(self, self._started, x)
            return self._EMPTY
        self._started = True
        mid = self._mean.push(x)
        std = self._std.push(x)
        if mid != mid:
            return self._EMPTY
        self.std = std
        self.value = v = BBandsResult(mid + self.nbdevup * std, mid, mid - self.nbdevdn * std)
        return v


# ----------------------------------------------------------------------------- log-return volatility

def _check_volatility(n: int, periods_per_year: float, ddof: int) -> tuple[int, float, int]:
    n = check_period("n", n, 2)
    ppy = check_real("periods_per_year", periods_per_year, positive=True)
    if isinstance(ddof, bool) or ddof not in (0, 1):
        raise IndicatorError(f"ddof must be 0 or 1, got {ddof!r}")
    return n, ppy, ddof


def volatility(close: Series, n: int = 20, annualize: bool = False, periods_per_year: float = 252.0,
               ddof: int = 1) -> np.ndarray:
    """Rolling standard deviation of log returns ``log(c_t / c_{t-1})`` over ``n`` returns (first
    value at index ``n``), times ``sqrt(periods_per_year)`` when ``annualize``. Prices must be > 0.

    The same as ``np.log(s / s.shift()).rolling(n).std(ddof)`` (times the annualisation
    factor), computed with the accurate rolling std (pandas' leaves ~1e-10 noise in a flat window).
    """
    n, ppy, ddof = _check_volatility(n, periods_per_year, ddof)
    start, (x,) = prepare(close=close)
    c = x[start:]
    if (c <= 0).any():
        raise IndicatorError(f"close must be > 0 for log returns, got {c[c <= 0][0]} at index "
                             f"{start + int(np.argmax(c <= 0))}")
    r = np.empty(max(len(c) - 1, 0))
    _kernels.log_returns(c, r)
    first = min(start + 1, len(x))  # the first return
    vol = output(len(x), first)
    _kernels.rolling_std(r, n, ddof, vol[first:])
    if annualize:
        vol *= math.sqrt(ppy)
    return vol


class Volatility:
    """Streaming log-return volatility, identical to :func:`volatility`."""

    __slots__ = ("_factor", "_prev", "_std", "annualize", "ddof", "n", "periods_per_year", "value")

    def __init__(self, n: int = 20, annualize: bool = False, periods_per_year: float = 252.0,
                 ddof: int = 1):
        self.n, self.periods_per_year, self.ddof = _check_volatility(n, periods_per_year, ddof)
        self.annualize = bool(annualize)
        self._factor = math.sqrt(self.periods_per_year) if self.annualize else 1.0
        self._std = RollingStd(self.n, self.ddof)
        self._prev = NAN
        self.value = NAN

    def update(self, close: float) -> float:
        prev = self._prev
        if close - close != 0.0:
            return skip_or_raise(self, prev == prev, close)
        if close <= 0:
            raise IndicatorError(f"Volatility.update: close must be > 0 for log returns, got {close}")
        self._prev = close
        if prev != prev:
            return NAN
        vol = self._std.push(math.log(close / prev))
        if self.annualize:
            vol = vol * self._factor
        self.value = vol
        return vol
