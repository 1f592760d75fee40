"""Trend strength: Wilder's Average Directional Index (ADX).

A copy of TA-Lib's ADX, operation by operation: directional movement and true range summed over
the first ``n - 1`` bars, Wilder-smoothed after; the first ADX is the mean of the first ``n``
DX, then ``adx = (adx * (n - 1) + dx) / n``. A bar with no range or no directional movement
leaves the ADX unchanged, as in TA-Lib.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alphaloop.indicators import _kernels
from alphaloop.indicators._validation import NAN, check_period, output, prepare, skip_or_raise
from alphaloop.indicators.volatility import _true_range

Series = Sequence[float] | np.ndarray


def _dx(minus_dm: float, plus_dm: float, tr: float) -> float:
    """DX, or NaN where TA-Lib skips the bar (zero range or zero directional movement)."""
    if tr == 0.0:
        return NAN
    minus_di = 100.0 * (minus_dm / tr)
    plus_di = 100.0 * (plus_dm / tr)
    total = minus_di + plus_di
    if total == 0.0:
        return NAN
    return 100.0 * (abs(minus_di - plus_di) / total)


def adx(high: Series, low: Series, close: Series, n: int = 14) -> np.ndarray:
    """Wilder's Average Directional Index (TA-Lib's ADX). First value at index ``2n - 1``."""
    n = check_period("n", n, 2)
    start, (h, lo, c) = prepare(high=high, low=low, close=close)
    out = output(len(h), start)
    _kernels.adx(h[start:], lo[start:], c[start:], n, out[start:])
    return out


class ADX:
    """Streaming ADX, identical to :func:`adx`; ``update(high, low, close)``."""

    __slots__ = ("_count", "_mdm", "_pdm", "_prev_c", "_prev_h", "_prev_l", "_sum_dx", "_trs", "n",
                 "value")

    def __init__(self, n: int = 14):
        self.n = check_period("n", n, 2)
        self._count = 0
        self._mdm = self._pdm = self._trs = self._sum_dx = 0.0
        self._prev_h = self._prev_l = self._prev_c = NAN
        self.value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        if high - high != 0.0 or low - low != 0.0 or close - close != 0.0:
            return skip_or_raise(self, self._count > 0, high, low, close)
        n, i = self.n, self._count
        self._count = i + 1
        if i == 0:
            self._prev_h, self._prev_l, self._prev_c = high, low, close
            return NAN
        diff_p, diff_m = high - self._prev_h, self._prev_l - low
        tr = _true_range(high, low, self._prev_c)
        self._prev_h, self._prev_l, self._prev_c = high, low, close
        mdm, pdm = self._mdm, self._pdm
        if i >= n:
            mdm -= mdm / n
            pdm -= pdm / n
        if diff_m > 0 and diff_p < diff_m:
            mdm += diff_m
        elif diff_p > 0 and diff_p > diff_m:
            pdm += diff_p
        self._mdm, self._pdm = mdm, pdm
        if i < n:
            self._trs += tr
            return NAN
        self._trs = trs = self._trs - self._trs / n + tr
        dx = _dx(mdm, pdm, trs)
        lookback = 2 * n - 1
        if i <= lookback:
            if dx == dx:
                self._sum_dx += dx
            if i < lookback:
                return NAN
            self.value = v = self._sum_dx / n
            return v
        if dx == dx:
            self.value = (self.value * (n - 1) + dx) / n
        return self.value
