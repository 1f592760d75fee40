"""Momentum indicators: RSI, MACD, stochastic.

Each recursion copies TA-Lib's (default compatibility, unstable period 0) operation by
operation, so the vectorised loop, the streaming object and TA-Lib agree: Wilder smoothing
``prev = (prev * (n - 1) + x) / n`` seeded with a plain average, MACD's fast EMA seeded on the
``fast`` values that end where the slow EMA's seed ends, STOCH's SMA-smoothed slow %K / %D.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from alphaloop.indicators import _kernels
from alphaloop.indicators._rolling import RollingExtreme, RollingMean
from alphaloop.indicators._validation import NAN, check_period, output, place, prepare, skip_or_raise
from alphaloop.indicators.errors import IndicatorError
from alphaloop.indicators.moving_averages import EMA

Series = Sequence[float] | np.ndarray


class MACDResult(NamedTuple):
    macd: np.ndarray | float
    signal: np.ndarray | float
    hist: np.ndarray | float


class StochResult(NamedTuple):
    slowk: np.ndarray | float
    slowd: np.ndarray | float


# ----------------------------------------------------------------------------- RSI

def _rsi_value(gain: float, loss: float) -> float:
    total = gain + loss
    return 100.0 * (gain / total) if total != 0.0 else 0.0


def rsi(close: Series, n: int = 14) -> np.ndarray:
    """Wilder's RSI, 0..100 (0 on a flat series, as TA-Lib). First value at index ``n``."""
    n = check_period("n", n, 2)
    start, (x,) = prepare(close=close)
    out = output(len(x), start)
    _kernels.rsi(x[start:], n, out[start:])
    return out


class RSI:
    """Streaming RSI, identical to :func:`rsi`."""

    __slots__ = ("_count", "_gain", "_loss", "_prev", "n", "value")

    def __init__(self, n: int = 14):
        self.n = check_period("n", n, 2)
        self._count = 0
        self._gain = self._loss = 0.0
        self._prev = NAN
        self.value = NAN

    def update(self, x: float) -> float:
        if x - x != 0.0:
            return skip_or_raise(self, self._count > 0, x)
        n = self.n
        self._count = count = self._count + 1
        d = x - self._prev
        self._prev = x
        if count == 1:
            return NAN
        gain, loss = self._gain, self._loss
        if count > n + 1:
            loss *= n - 1
            gain *= n - 1
        if d < 0.0:
            loss -= d
        else:
            gain += d
        if count < n + 1:  # still summing the seed
            self._gain, self._loss = gain, loss
            return NAN
        loss /= n
        gain /= n
        self._gain, self._loss = gain, loss
        self.value = v = _rsi_value(gain, loss)
        return v


# ----------------------------------------------------------------------------- MACD

def _check_macd(fast: int, slow: int, signal: int) -> tuple[int, int, int]:
    fast, slow = check_period("fast", fast), check_period("slow", slow)
    signal = check_period("signal", signal)
    if fast >= slow:
        raise IndicatorError(f"fast must be < slow, got fast={fast}, slow={slow}")
    return fast, slow, signal


def macd(close: Series, fast: int = 12, slow: int = 26, signal: int = 9) -> MACDResult:
    """MACD line, signal line and histogram, TA-Lib's alignment: all three start at index
    ``slow - 1 + signal - 1``; the fast EMA is seeded on the ``fast`` values ending at ``slow - 1``."""
    fast, slow, signal = _check_macd(fast, slow, signal)
    start, (x,) = prepare(close=close)
    line_out, sig_out, hist_out = (output(len(x), start) for _ in range(3))
    _kernels.macd(x[start:], fast, slow, signal, line_out[start:], sig_out[start:], hist_out[start:])
    return MACDResult(line_out, sig_out, hist_out)


class MACD:
    """Streaming MACD, identical to :func:`macd`; ``update`` returns a :class:`MACDResult` of floats."""

    __slots__ = ("_count", "_fast", "_fast_value", "_signal", "_slow", "fast", "signal", "slow",
                 "value")

    _EMPTY = MACDResult(NAN, NAN, NAN)

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9):
        self.fast, self.slow, self.signal = _check_macd(fast, slow, signal)
        self._fast, self._slow, self._signal = EMA(self.fast), EMA(self.slow), EMA(self.signal)
        self._count = 0
        self._fast_value = NAN
        self.value = self._EMPTY

    def update(self, x: float) -> MACDResult:
        if x - x != 0.0:
            skip_or_raise(self, self._count > 0, x)
            return self._EMPTY
        self._count = count = self._count + 1
        s = self._slow.update(x)
        if count > self.slow - self.fast:  # TA-Lib's alignment of the fast EMA's seed
            self._fast_value = self._fast.update(x)
        if count < self.slow:
            return self._EMPTY
        line = self._fast_value - s
        sig = self._signal.update(line)
        if sig != sig:
            return self._EMPTY
        self.value = v = MACDResult(line, sig, line - sig)
        return v


# ----------------------------------------------------------------------------- STOCH

_TA_EPSILON = 1e-14  # TA-Lib's zero band, scaled by the operands (a flat window gives %K = 0)


def _fast_k(close: float, hh: float, ll: float) -> float:
    rng = hh - ll
    if abs(rng) <= _TA_EPSILON * (abs(hh) + abs(ll)):
        return 0.0
    return ((close - ll) / rng) * 100.0


def _check_stoch(fastk: int, slowk: int, slowd: int) -> tuple[int, int, int]:
    return (check_period("fastk", fastk), check_period("slowk", slowk),
            check_period("slowd", slowd))


def stoch(high: Series, low: Series, close: Series, fastk: int = 5, slowk: int = 3,
          slowd: int = 3) -> StochResult:
    """Slow stochastic (TA-Lib's STOCH with SMA smoothing): %K over ``fastk`` bars smoothed by an
    SMA of ``slowk``, %D an SMA of ``slowd`` over slow %K. Both start at
    ``fastk + slowk + slowd - 3``."""
    fastk, slowk, slowd = _check_stoch(fastk, slowk, slowd)
    start, (h, lo, c) = prepare(high=high, low=low, close=close)
    hh = pd.Series(h[start:]).rolling(fastk).max().to_numpy(copy=True)
    ll = pd.Series(lo[start:]).rolling(fastk).min().to_numpy(copy=True)
    rng = hh - ll
    flat = np.abs(rng) <= _TA_EPSILON * (np.abs(hh) + np.abs(ll))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = ((c[start:] - ll) / rng) * 100.0
    k[flat] = 0.0
    sk = pd.Series(k).rolling(slowk).mean().to_numpy(copy=True)
    sd = pd.Series(sk).rolling(slowd).mean().to_numpy(copy=True)
    sk[: fastk + slowk + slowd - 3] = NAN  # TA-Lib hides slow %K until %D exists
    return StochResult(place(len(h), start, sk), place(len(h), start, sd))


class Stoch:
    """Streaming slow stochastic, identical to :func:`stoch`; ``update(high, low, close)``."""

    __slots__ = ("_d", "_k", "_max", "_min", "_started", "fastk", "slowd", "slowk", "value")

    _EMPTY = StochResult(NAN, NAN)

    def __init__(self, fastk: int = 5, slowk: int = 3, slowd: int = 3):
        self.fastk, self.slowk, self.slowd = _check_stoch(fastk, slowk, slowd)
        self._max, self._min = RollingExtreme(self.fastk, 1), RollingExtreme(self.fastk, -1)
        self._k, self._d = RollingMean(self.slowk), RollingMean(self.slowd)
        self._started = False
        self.value = self._EMPTY

    def update(self, high: float, low: float, close: float) -> StochResult:
        if high - high != 0.0 or low - low != 0.0 or close - close != 0.0:
            skip_or_raise(self, self._started, high, low, close)
            return self._EMPTY
        self._started = True
        hh, ll = self._max.push(high), self._min.push(low)
        if hh != hh:
            return self._EMPTY
        sk = self._k.push(_fast_k(close, hh, ll))
        if sk != sk:
            return self._EMPTY
        sd = self._d.push(sk)
        if sd != sd:
            return self._EMPTY
        self.value = v = StochResult(sk, sd)
        return v
