"""Input checks shared by the indicators: done once per call (vectorised) or as one cheap
comparison per update (streaming), before any state changes."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.indicators.errors import IndicatorError

NAN = math.nan


def check_period(name: str, value: Any, minimum: int = 1) -> int:
    """An integer period >= ``minimum`` (bools are refused: ``True`` is not a period)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise IndicatorError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise IndicatorError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_real(name: str, value: Any, *, positive: bool = False) -> float:
    """A finite real number (optionally > 0)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise IndicatorError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise IndicatorError(f"{name} must be > 0, got {value}")
    return float(value)


def as_series(name: str, values: Any) -> np.ndarray:
    """A contiguous 1-D float64 array from a list, numpy array or pandas Series (no copy where
    the input already is one)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise IndicatorError(f"{name}: expected a 1-D series of numbers ({exc})") from exc
    if arr.ndim != 1:
        raise IndicatorError(f"{name}: expected a 1-D series, got shape {arr.shape}")
    return np.ascontiguousarray(arr)  # the compiled kernels take contiguous arrays


def prepare(**series: Any) -> tuple[int, list[np.ndarray]]:
    """Validate same-length input series and return ``(start, arrays)``.

    ``start`` is the first index from which every input is valid. Leading NaN (a warm-up
    inherited from another indicator) is allowed and skipped, as TA-Lib's Python wrapper does;
    NaN after ``start`` or any infinity is an error naming the series and the index.
    """
    arrays = [as_series(name, values) for name, values in series.items()]
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        sizes = ", ".join(f"{name}={len(a)}" for name, a in zip(series, arrays))
        raise IndicatorError(f"input series have different lengths: {sizes}")
    if all(np.isfinite(arr).all() for arr in arrays):  # the common case, in one pass per series
        return 0, arrays
    for name, arr in zip(series, arrays):
        inf = np.isinf(arr)
        if inf.any():
            raise IndicatorError(f"{name} has an infinite value at index {int(np.argmax(inf))}")
    nan = np.isnan(arrays[0])
    for arr in arrays[1:]:
        nan |= np.isnan(arr)
    if not nan.any():
        return 0, arrays
    if nan.all():
        return len(nan), arrays
    start = int(np.argmin(nan))
    later = np.flatnonzero(nan[start:])
    if later.size:
        index = start + int(later[0])
        name = next(n for n, a in zip(series, arrays) if math.isnan(a[index]))
        raise IndicatorError(
            f"{name} has NaN at index {index}, inside the series (first valid index is {start}); "
            "NaN is only accepted as a leading warm-up")
    return start, arrays


def leading(x: np.ndarray) -> int:
    """The number of leading NaN in an array already checked by :func:`prepare`."""
    nan = np.isnan(x)
    return int(np.argmin(nan)) if not nan.all() else len(x)


def output(size: int, start: int) -> np.ndarray:
    """A full-length result for a kernel to fill from ``start`` on (NaN before it)."""
    out = np.empty(size)
    out[:start] = NAN
    return out


def place(size: int, start: int, values: Any) -> np.ndarray:
    """A full-length output: NaN before ``start``, then ``values``."""
    out = np.full(size, NAN)
    out[start:] = values
    return out


def check_times(name: str, times: Any, size: int) -> np.ndarray:
    """Bar times as int64 UTC nanoseconds, strictly increasing (naive times are taken as UTC)."""
    try:
        index = pd.DatetimeIndex(times)
    except (TypeError, ValueError) as exc:
        raise IndicatorError(f"{name}: expected timestamps ({exc})") from exc
    if len(index) != size:
        raise IndicatorError(f"{name} has {len(index)} values, the price series have {size}")
    if index.hasnans:
        raise IndicatorError(f"{name} has a missing timestamp at index {int(np.argmax(index.isna()))}")
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    ns = index.as_unit("ns").asi8
    steps = np.diff(ns)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0)) + 1
        raise IndicatorError(f"{name} is not strictly increasing: index {i} ({index[i]}) "
                             f"is not after index {i - 1} ({index[i - 1]})")
    return ns


def time_ns(name: str, t: Any) -> int:
    """One bar time as int64 UTC nanoseconds (streaming; naive times are taken as UTC)."""
    if type(t) is not pd.Timestamp:
        try:
            t = pd.Timestamp(t)
        except (TypeError, ValueError) as exc:
            raise IndicatorError(f"{name}: expected a timestamp, got {t!r}") from exc
    if t is pd.NaT:
        raise IndicatorError(f"{name}: expected a timestamp, got NaT")
    return t.value


def skip_or_raise(owner: object, started: bool, *values: float) -> float:
    """Handle a non-finite streaming input before touching any state.

    Leading NaN (nothing accepted yet) is skipped and yields NaN, matching the vectorised
    forms; NaN after the first accepted value, or any infinity, is refused.
    """
    name = type(owner).__name__
    for v in values:
        if math.isinf(v):
            raise IndicatorError(f"{name}.update: got an infinite value ({v})")
    if started:
        raise IndicatorError(f"{name}.update: got NaN after the series started; "
                             "NaN is only accepted as a leading warm-up")
    return NAN
