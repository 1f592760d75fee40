"""Moving averages: SMA, EMA, WMA (vectorised functions and streaming classes).

SMA is pandas' rolling mean (the strategy engine relies on that exact arithmetic for parity with
backtesting.py); the streaming SMA replays pandas' kernel so both forms agree bit for bit.
EMA and WMA follow TA-Lib's recursions operation by operation: EMA seeded with the SMA of the
first ``n`` values, WMA with TA-Lib's running sums. Vectorised recursions are compiled loops
(:mod:`alphaloop.indicators._kernels`) doing the streaming arithmetic in the same order, which is
what makes them identical to the streaming forms.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
import pandas as pd

from alphaloop.indicators import _kernels
from alphaloop.indicators._rolling import RollingMean
from alphaloop.indicators._validation import NAN, check_period, output, prepare, skip_or_raise


def sma(close: Sequence[float] | np.ndarray, n: int = 30) -> np.ndarray:
    """Simple moving average: exactly ``pd.Series(close).rolling(n).mean()``."""
    n = check_period("n", n)
    _, (x,) = prepare(close=close)
    return pd.Series(x).rolling(n).mean().to_numpy(copy=True)


class SMA:
    """Streaming simple moving average, bit-identical to :func:`sma` (pandas' rolling mean)."""

    __slots__ = ("_mean", "_started", "n", "value")

    def __init__(self, n: int = 30):
        self.n = check_period("n", n)
        self._mean = RollingMean(self.n)
        self._started = False
        self.value = NAN

    def update(self, x: float) -> float:
        if x - x != 0.0:  # NaN or inf in one comparison
            return skip_or_raise(self, self._started, x)
        self._started = True
        self.value = v = self._mean.push(x)
        return v


def ema(close: Sequence[float] | np.ndarray, n: int = 30) -> np.ndarray:
    """Exponential moving average, k = 2/(n+1), seeded with the SMA of the first n values (TA-Lib)."""
    n = check_period("n", n)
    start, (x,) = prepare(close=close)
    out = output(len(x), start)
    _kernels.ema(x[start:], n, out[start:])
    return out


class EMA:
    """Streaming EMA, identical to :func:`ema`."""

    __slots__ = ("_count", "_k", "_total", "n", "value")

    def __init__(self, n: int = 30):
        self.n = check_period("n", n)
        self._k = 2.0 / (self.n + 1)
        self._count = 0
        self._total = 0.0
        self.value = NAN

    def update(self, x: float) -> float:
        if x - x != 0.0:
            return skip_or_raise(self, self._count > 0, x)
        n = self.n
        self._count = count = self._count + 1
        if n == 1:
            self.value = v = float(x)
        elif count > n:
            prev = self.value
            self.value = v = (x - prev) * self._k + prev
        else:
            self._total += x
            v = self._total / n if count == n else NAN
            self.value = v
        return v


def wma(close: Sequence[float] | np.ndarray, n: int = 30) -> np.ndarray:
    """Linearly weighted moving average (weights 1..n, newest heaviest), as TA-Lib's WMA.

    Each window is summed afresh (TA-Lib's classic running sums drift by ~1e-9 relative over
    a million values; the streaming form refreshes its sums exactly every ``n`` values)."""
    n = check_period("n", n)
    start, (x,) = prepare(close=close)
    out = output(len(x), start)
    _kernels.wma(x[start:], n, out[start:])
    return out


class WMA:
    """Streaming WMA; agrees with :func:`wma` to ~1e-15 relative, and exactly on every ``n``-th
    value after the warm-up, where it recomputes its running sums from the window (amortised O(1))."""

    __slots__ = ("_buf", "_divider", "_since", "_sum", "_wsum", "n", "value")

    def __init__(self, n: int = 30):
        self.n = check_period("n", n)
        self._divider = (self.n * (self.n + 1)) >> 1
        self._buf: deque[float] = deque(maxlen=self.n)
        self._sum = self._wsum = 0.0
        self._since = 0
        self.value = NAN

    def update(self, x: float) -> float:
        buf, n = self._buf, self.n
        if x - x != 0.0:
            return skip_or_raise(self, len(buf) > 0, x)
        full = len(buf) == n
        if full and self._since < n - 1:
            # Slide: every weight drops by one (minus the old sum), the new value gets weight n.
            self._wsum = self._wsum - self._sum + x * n
            self._sum = self._sum - buf[0] + x
            self._since += 1
            buf.append(x)
        else:
            buf.append(x)
            if len(buf) < n:
                return NAN
            # Exact refresh, in the same order as the vectorised form.
            wsum = buf[0] * 1.0
            total = buf[0] * 1.0
            for j in range(1, n):
                v = buf[j]
                wsum += v * float(j + 1)
                total += v
            self._wsum, self._sum, self._since = wsum, total, 0
        self.value = v = self._wsum / self._divider
        return v
