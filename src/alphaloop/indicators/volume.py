"""Volume indicators: on-balance volume and VWAP (cumulative or anchored to sessions).

VWAP = sum(typical price * volume) / sum(volume), typical price = (high + low + close) / 3,
summed from the start of the series (``anchor=None``) or of each session: ``"D"`` (UTC day),
``"W"`` (week from Monday) or ``"M"`` (calendar month), shifted by ``offset`` (e.g. "22h" for an
FX day that opens at 22:00 UTC). Sums run in time order in both forms (the vectorised form is
one compiled loop, :mod:`alphaloop.indicators._kernels`), so the streaming and vectorised values
are identical.

The volume-weighted standard deviation of the typical price around the VWAP (for VWAP bands)
uses West's weighted Welford update, one bar at a time in both forms: ``E[p^2] - E[p]^2``
would leave rounding noise of ~1e-8 of the price where the true deviation is 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from alphaloop.indicators import _kernels
from alphaloop.indicators._validation import (
    NAN,
    check_real,
    check_times,
    output,
    place,
    prepare,
    skip_or_raise,
    time_ns,
)
from alphaloop.indicators.errors import IndicatorError

Series = Sequence[float] | np.ndarray
_DAY_NS = 86_400_000_000_000
ANCHORS = (None, "D", "W", "M")


class VWAPBandsResult(NamedTuple):
    upper: np.ndarray | float
    middle: np.ndarray | float
    lower: np.ndarray | float


# ----------------------------------------------------------------------------- OBV

def obv(close: Series, volume: Series) -> np.ndarray:
    """On-balance volume (TA-Lib OBV): starts at the first volume, then adds the volume of an
    up-close bar and subtracts that of a down-close bar."""
    start, (c, v) = prepare(close=close, volume=volume)
    c, v = c[start:], v[start:]
    if len(c) == 0:
        return np.full(start, NAN)
    steps = np.where(c[1:] > c[:-1], v[1:], np.where(c[1:] < c[:-1], -v[1:], 0.0))
    return place(start + len(c), start, np.cumsum(np.concatenate(([v[0]], steps))))


class OBV:
    """Streaming on-balance volume, identical to :func:`obv`; ``update(close, volume)``."""

    __slots__ = ("_prev", "value")

    def __init__(self) -> None:
        self._prev = NAN
        self.value = NAN

    def update(self, close: float, volume: float) -> float:
        prev = self._prev
        if close - close != 0.0 or volume - volume != 0.0:
            return skip_or_raise(self, prev == prev, close, volume)
        self._prev = close
        if prev != prev:
            self.value = v = float(volume)
        elif close > prev:
            self.value = v = self.value + volume
        elif close < prev:
            self.value = v = self.value - volume
        else:
            v = self.value
        return v


# ----------------------------------------------------------------------------- sessions

def _check_anchor(anchor: Any, offset: Any) -> tuple[str | None, int]:
    if anchor not in ANCHORS:
        raise IndicatorError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
    try:
        off = pd.Timedelta(offset)
    except (TypeError, ValueError) as exc:
        raise IndicatorError(f"offset must be a time offset such as '22h', got {offset!r}") from exc
    if off is pd.NaT:
        raise IndicatorError("offset must be a time offset such as '22h', got NaT")
    return anchor, off.value


def _session_keys(ns: np.ndarray, anchor: str, offset_ns: int) -> np.ndarray:
    t = ns - offset_ns
    if anchor == "D":
        return t // _DAY_NS
    if anchor == "W":  # 1970-01-01 was a Thursday: +3 days puts week starts on Mondays
        return (t // _DAY_NS + 3) // 7
    return t.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)


def _session_key(t: int, anchor: str, offset_ns: int) -> int:
    """The same key as :func:`_session_keys`, for one time (integer arithmetic: per-bar cost)."""
    t -= offset_ns
    if anchor == "D":
        return t // _DAY_NS
    if anchor == "W":
        return (t // _DAY_NS + 3) // 7
    return int(np.datetime64(t, "ns").astype("datetime64[M]").astype(np.int64))


class _WeightedStd:
    """West's (1979) weighted Welford update: volume-weighted std of the typical price, O(1)."""

    __slots__ = ("mean", "ssq", "weight")

    def __init__(self) -> None:
        self.weight = self.mean = self.ssq = 0.0

    def push(self, x: float, w: float) -> float:
        if w > 0.0:
            if self.weight == 0.0:  # first weighted bar: exact mean, no spread yet
                self.weight, self.mean, self.ssq = w, x, 0.0
            else:
                total = self.weight + w
                delta = x - self.mean
                r = delta * w / total
                self.mean += r
                self.ssq += self.weight * delta * r
                self.weight = total
        if self.weight == 0.0:
            return NAN
        var = self.ssq / self.weight
        return math.sqrt(var) if var > 0.0 else 0.0


def _vwap_parts(high: Series, low: Series, close: Series, volume: Series, times: Any,
                anchor: Any, offset: Any, with_vwap: bool = True,
                with_std: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(vwap, std), full length with NaN before the first valid bar (None where not wanted)."""
    anchor, offset_ns = _check_anchor(anchor, offset)
    start, (h, lo, c, v) = prepare(high=high, low=low, close=close, volume=volume)
    size = len(h)
    if times is not None or anchor is not None:
        if times is None:
            raise IndicatorError(f"anchor={anchor!r} needs the bar times (times=...)")
        ns = check_times("times", times, size)[start:]
    h, lo, c, v = h[start:], lo[start:], c[start:], v[start:]
    if (v < 0).any():
        i = int(np.argmax(v < 0))
        raise IndicatorError(f"volume must be >= 0, got {v[i]} at index {start + i}")
    vwap = output(size, start) if with_vwap else None
    std = output(size, start) if with_std else None
    if len(v) == 0:
        return vwap, std
    if anchor is None:
        starts = np.array([0])
    else:
        keys = _session_keys(ns, anchor, offset_ns)
        starts = np.concatenate(([0], np.flatnonzero(keys[1:] != keys[:-1]) + 1))
    tp = (h + lo + c) / 3.0
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    if vwap is not None:
        _kernels.session_vwap(tp, v, starts, vwap[start:])
    if std is not None:
        _kernels.session_std(tp, v, starts, std[start:])
    return vwap, std


def vwap(high: Series, low: Series, close: Series, volume: Series, times: Any = None,
         anchor: str | None = None, offset: Any = 0) -> np.ndarray:
    """Volume-weighted average price. ``anchor=None`` sums from the first bar; "D"/"W"/"M"
    restart at each session (``times`` required). NaN while a session has no volume."""
    value, _ = _vwap_parts(high, low, close, volume, times, anchor, offset, with_std=False)
    return value


def vwap_std(high: Series, low: Series, close: Series, volume: Series, times: Any = None,
             anchor: str | None = None, offset: Any = 0) -> np.ndarray:
    """Volume-weighted standard deviation of the typical price around the VWAP, per session."""
    _, std = _vwap_parts(high, low, close, volume, times, anchor, offset, with_vwap=False)
    return std


def vwap_bands(high: Series, low: Series, close: Series, volume: Series, times: Any = None,
               anchor: str | None = None, offset: Any = 0, nbdev: float = 2.0) -> VWAPBandsResult:
    """VWAP +/- ``nbdev`` volume-weighted standard deviations."""
    nbdev = check_real("nbdev", nbdev)
    value, std = _vwap_parts(high, low, close, volume, times, anchor, offset)
    return VWAPBandsResult(value + nbdev * std, value, value - nbdev * std)


class VWAP:
    """Streaming VWAP, identical to :func:`vwap`; ``update(time, high, low, close, volume)``.

    After each update, ``std`` holds :func:`vwap_std`'s value and ``session_bars`` the number of
    bars in the current session. A bar time not after the previous one is refused.
    """

    __slots__ = ("_key", "_last", "_moments", "_pv", "_started", "_v", "anchor", "offset",
                 "session_bars", "std", "value")

    def __init__(self, anchor: str | None = None, offset: Any = 0):
        self.anchor, self.offset = _check_anchor(anchor, offset)
        self._key: int | None = None
        self._last: int | None = None
        self._started = False
        self._pv = self._v = 0.0
        self._moments = _WeightedStd()
        self.session_bars = 0
        self.std = NAN
        self.value = NAN

    def update(self, time: Any, high: float, low: float, close: float, volume: float) -> float:
        t = time_ns("VWAP.update", time)
        if self._last is not None and t <= self._last:
            raise IndicatorError(f"VWAP.update: bar at {pd.Timestamp(t, tz='UTC')} is not after the "
                                 f"last one at {pd.Timestamp(self._last, tz='UTC')}")
        if high - high != 0.0 or low - low != 0.0 or close - close != 0.0 or volume - volume != 0.0:
            skip_or_raise(self, self._started, high, low, close, volume)
            self._last = t
            return NAN
        if volume < 0:
            raise IndicatorError(f"VWAP.update: volume must be >= 0, got {volume}")
        self._last = t
        self._started = True
        tp = (high + low + close) / 3.0
        key = 0 if self.anchor is None else _session_key(t, self.anchor, self.offset)
        if key != self._key:  # a new session: restart the sums from this bar
            self._key = key
            # numpy's cumsum starts from the first value (not 0.0 + value): same here.
            self._pv, self._v = tp * volume, volume
            self._moments = _WeightedStd()
            self.session_bars = 1
        else:
            self._pv += tp * volume
            self._v += volume
            self.session_bars += 1
        self.std = self._moments.push(tp, volume)
        cum_v = self._v
        self.value = value = self._pv / cum_v if cum_v != 0.0 else NAN
        return value


class VWAPBands:
    """Streaming VWAP bands, identical to :func:`vwap_bands`."""

    __slots__ = ("_vwap", "nbdev", "value")

    _EMPTY = VWAPBandsResult(NAN, NAN, NAN)

    def __init__(self, nbdev: float = 2.0, anchor: str | None = None, offset: Any = 0):
        self.nbdev = check_real("nbdev", nbdev)
        self._vwap = VWAP(anchor, offset)
        self.value = self._EMPTY

    def update(self, time: Any, high: float, low: float, close: float, volume: float) -> VWAPBandsResult:
        mid = self._vwap.update(time, high, low, close, volume)
        if mid != mid:
            return self._EMPTY
        std = self._vwap.std
        self.value = v = VWAPBandsResult(mid + self.nbdev * std, mid, mid - self.nbdev * std)
        return v
