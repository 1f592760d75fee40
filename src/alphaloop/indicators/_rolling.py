"""Rolling window kernels shared by the streaming and vectorised forms (finite input only).

``RollingMean`` replays pandas 3.x ``roll_mean`` (``_libs/window/aggregations.pyx``) operation
by operation: Kahan-compensated add and remove with separate compensations, removals before
additions, the sign clamps and the same-value shortcut, so it reproduces
``pd.Series(x).rolling(n).mean()`` bit for bit. ``RollingStd`` is an accurate rolling
standard deviation; ``RollingExtreme`` a monotonic-deque max/min.
"""

from __future__ import annotations

import math
from collections import deque

NAN = math.nan
# RollingStd recomputes a window whose sum of squares fell below this fraction of its peak.
_COLLAPSE = 0.1


class RollingMean:
    """pandas ``roll_mean`` over a fixed window of ``n``; O(1) per value."""

    __slots__ = ("_buf", "_comp_add", "_comp_rem", "_n", "_neg", "_prev", "_run", "_sum")

    def __init__(self, n: int):
        self._n = n
        self._buf: deque[float] = deque()
        self._sum = self._comp_add = self._comp_rem = 0.0
        self._neg = self._run = 0
        self._prev = NAN

    def push(self, val: float) -> float:
        buf = self._buf
        if len(buf) == self._n:
            old = buf.popleft()
            y = -old - self._comp_rem
            t = self._sum + y
            self._comp_rem = t - self._sum - y
            self._sum = t
            if old < 0.0 or (old == 0.0 and math.copysign(1.0, old) < 0.0):  # signbit
                self._neg -= 1
        buf.append(val)
        y = val - self._comp_add
        t = self._sum + y
        self._comp_add = t - self._sum - y
        self._sum = t
        if val < 0.0 or (val == 0.0 and math.copysign(1.0, val) < 0.0):
            self._neg += 1
        # pandas GH#42064: a run of identical values returns that value exactly.
        if val == self._prev:
            self._run += 1
        else:
            self._run = 1
        self._prev = val
        nobs = len(buf)
        if nobs < self._n:
            return NAN
        if self._run >= nobs:
            return float(val)
        result = self._sum / nobs
        if self._neg == 0 and result < 0:
            return 0.0
        if self._neg == nobs and result > 0:
            return 0.0
        return result


class RollingStd:
    """Rolling standard deviation over a window of ``n`` (``n >= 2``), accurate to ~1e-13 relative.

    Welford add/remove is O(1), but its rounding noise is relative to the values, not to their
    spread: pandas' rolling var leaves ~1e-17 in a flat window after a move (Bollinger bands
    ~6e-9 off where TA-Lib says 0) and is ~1e-9 off on hourly FX closes. Here the values are
    shifted by a recent value (so the arithmetic sees the spread, not the price level) and the
    window is recomputed from its values every ``n`` updates and whenever the sum of squares
    falls below a tenth of its peak since the last recompute: amortised O(1), ~1e-14 relative,
    exactly 0 for a flat window. The vectorised forms run the same arithmetic as one compiled
    loop (:func:`alphaloop.indicators._kernels.rolling_std`).
    """

    __slots__ = ("_buf", "_ddof", "_mean", "_n", "_peak", "_shift", "_since", "_ssq")

    def __init__(self, n: int, ddof: int):
        self._n, self._ddof = n, ddof
        self._buf: deque[float] = deque()
        self._mean = self._ssq = self._peak = self._shift = 0.0
        self._since = 0

    def push(self, val: float) -> float:
        buf, n = self._buf, self._n
        if not buf:
            self._shift = val
        shift = self._shift
        mean, ssq = self._mean, self._ssq
        if len(buf) == n:
            old = buf.popleft() - shift
            delta = old - mean
            mean -= delta / (n - 1)
            ssq -= delta * (old - mean)
        buf.append(val)
        k = len(buf)
        y = val - shift
        delta = y - mean
        mean += delta / k
        ssq += delta * (y - mean)
        self._since += 1
        if ssq > self._peak:
            self._peak = ssq
        if ssq < self._peak * _COLLAPSE or self._since >= n:
            self._shift = shift = val
            mean = ssq = 0.0
            for j, v in enumerate(buf, 1):
                y = v - shift
                delta = y - mean
                mean += delta / j
                ssq += delta * (y - mean)
            self._peak, self._since = ssq, 0
        self._mean, self._ssq = mean, ssq
        if k < n:
            return NAN
        var = ssq / (k - self._ddof)
        return math.sqrt(var) if var > 0.0 else 0.0


class RollingExtreme:
    """Rolling maximum (``sign=1``) or minimum (``sign=-1``) with a monotonic deque: amortised O(1)."""

    __slots__ = ("_count", "_items", "_n", "_sign")

    def __init__(self, n: int, sign: int):
        self._n, self._sign = n, sign
        self._items: deque[tuple[int, float]] = deque()
        self._count = 0

    def push(self, val: float) -> float:
        items, i = self._items, self._count
        if self._sign > 0:
            while items and items[-1][1] <= val:
                items.pop()
        else:
            while items and items[-1][1] >= val:
                items.pop()
        items.append((i, val))
        if items[0][0] <= i - self._n:
            items.popleft()
        self._count = i + 1
        return items[0][1] if i + 1 >= self._n else NAN
