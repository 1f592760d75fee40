"""Rolling z-score of a series against its own rolling mean and standard deviation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from alphaloop.indicators import _kernels
from alphaloop.indicators._rolling import RollingMean, RollingStd
from alphaloop.indicators._validation import NAN, check_period, leading, output, prepare, skip_or_raise
from alphaloop.indicators.errors import IndicatorError


def _check(n: int, ddof: int) -> tuple[int, int]:
    n = check_period("n", n, 2)
    if isinstance(ddof, bool) or ddof not in (0, 1):
        raise IndicatorError(f"ddof must be 0 or 1, got {ddof!r}")
    return n, ddof


def zscore(close: Sequence[float] | np.ndarray, n: int = 20, ddof: int = 0) -> np.ndarray:
    """``(x - mean) / std`` over the last ``n`` values (pandas' rolling mean, the accurate rolling
    std of :func:`bbands`); 0 where the window has no dispersion (std == 0). With the default
    ddof=0 the mean and std are Bollinger's, so ``|z| > k`` when ``x`` is outside
    ``bbands(x, n, k, k)`` (up to rounding at the band itself)."""
    n, ddof = _check(n, ddof)
    _, (x,) = prepare(close=close)
    start = leading(x)
    mean = pd.Series(x).rolling(n).mean().to_numpy(copy=True)
    std = output(len(x), start)
    _kernels.rolling_std(x[start:], n, ddof, std[start:])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x - mean) / std
    z[std == 0.0] = 0.0
    return z


class ZScore:
    """Streaming z-score, identical to :func:`zscore`."""

    __slots__ = ("_mean", "_started", "_std", "ddof", "n", "value")

    def __init__(self, n: int = 20, ddof: int = 0):
        self.n, self.ddof = _check(n, ddof)
        self._mean, self._std = RollingMean(self.n), RollingStd(self.n, self.ddof)
        self._started = False
        self.value = NAN

    def update(self, x: float) -> float:
        if x - x != 0.0:
            return skip_or_raise(self, self._started, x)
        self._started = True
        mean = self._mean.push(x)
        std = self._std.push(x)
        if mean != mean or std != std:
            return NAN
        self.value = z = (x - mean) / std if std != 0.0 else 0.0
        return z
