"""The pure-Python loops the numba kernels replaced, kept verbatim as references.

Each function is the arithmetic of the vectorised indicators before they were compiled (loops
over Python floats, numpy's cumsum for the VWAP sums), taking and returning arrays over the
valid part of a series (NaN in the warm-up). ``test_indicators_kernels`` checks that every
kernel returns the same doubles bit for bit.
"""

from __future__ import annotations

import math
from itertools import islice, pairwise

import numpy as np

NAN = math.nan
_COLLAPSE = 0.1


def _array(values: list[float]) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# ----------------------------------------------------------------------------- moving averages

def _ema_list(x: list[float], n: int) -> list[float]:
    if n == 1:
        return list(x)
    if len(x) < n:
        return [NAN] * len(x)
    k = 2.0 / (n + 1)
    total = 0.0
    for v in islice(x, n):
        total += v
    prev = total / n
    out = [NAN] * (n - 1)
    out.append(prev)
    append = out.append
    for v in islice(x, n, None):
        prev = (v - prev) * k + prev
        append(prev)
    return out


def ema(x: np.ndarray, n: int) -> np.ndarray:
    return _array(_ema_list(x.tolist(), n))


def wma(x: np.ndarray, n: int) -> np.ndarray:
    size = len(x)
    out = np.full(size, NAN)
    if size < n:
        return out
    m = size - n + 1
    acc = x[:m] * 1.0
    for j in range(1, n):
        acc += x[j:j + m] * float(j + 1)
    out[n - 1:] = acc / ((n * (n + 1)) >> 1)
    return out


def macd(x: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = x.tolist()
    size = len(values)
    line_out, sig_out, hist_out = (np.full(size, NAN) for _ in range(3))
    if size >= slow:
        slow_ema = _ema_list(values, slow)
        fast_ema = _ema_list(values[slow - fast:], fast)
        offset = slow - fast
        line = [fast_ema[i - offset] - slow_ema[i] for i in range(slow - 1, size)]
        sig = _ema_list(line, signal)
        first = slow - 1 + signal - 1
        line_arr = np.array(line[signal - 1:])
        sig_arr = np.array(sig[signal - 1:])
        line_out[first:] = line_arr
        sig_out[first:] = sig_arr
        hist_out[first:] = line_arr - sig_arr
    return line_out, sig_out, hist_out


# ----------------------------------------------------------------------------- RSI

def rsi(values: np.ndarray, n: int) -> np.ndarray:
    x = values.tolist()
    size = len(x)
    if size <= n:
        return _array([NAN] * size)
    prev = x[0]
    gain = loss = 0.0
    for v in islice(x, 1, n + 1):
        d = v - prev
        prev = v
        if d < 0.0:
            loss -= d
        else:
            gain += d
    loss /= n
    gain /= n
    total = gain + loss
    out = [NAN] * n
    out.append(100.0 * (gain / total) if total != 0.0 else 0.0)
    append, m = out.append, n - 1
    for v in islice(x, n + 1, None):
        d = v - prev
        prev = v
        loss *= m
        gain *= m
        if d < 0.0:
            loss -= d
        else:
            gain += d
        loss /= n
        gain /= n
        total = gain + loss
        append(100.0 * (gain / total) if total != 0.0 else 0.0)
    return _array(out)


# ----------------------------------------------------------------------------- true range / ATR / ADX

def _true_range(high: float, low: float, prev_close: float) -> float:
    tr = high - low
    t = abs(high - prev_close)
    if t > tr:
        tr = t
    t = abs(low - prev_close)
    if t > tr:
        tr = t
    return tr


def true_range(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
    tr = np.full(len(h), NAN)
    if len(h) > 1:
        pc = c[:-1]
        tr[1:] = np.maximum(np.maximum(h[1:] - lo[1:], np.abs(h[1:] - pc)), np.abs(lo[1:] - pc))
    return tr


def atr(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    tr = true_range(h, lo, c).tolist()
    size = len(tr)
    if size <= n:
        return _array([NAN] * size)
    total = 0.0
    for v in islice(tr, 1, n + 1):
        total += v
    prev = total / n
    out = [NAN] * n
    out.append(prev)
    append, m = out.append, n - 1
    for v in islice(tr, n + 1, None):
        prev = (prev * m + v) / n
        append(prev)
    return _array(out)


def _dx(minus_dm: float, plus_dm: float, tr: float) -> float:
    if tr == 0.0:
        return NAN
    minus_di = 100.0 * (minus_dm / tr)
    plus_di = 100.0 * (plus_dm / tr)
    total = minus_di + plus_di
    if total == 0.0:
        return NAN
    return 100.0 * (abs(minus_di - plus_di) / total)


def adx(high: np.ndarray, low_: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    h, lo, c = high.tolist(), low_.tolist(), close.tolist()
    size = len(h)
    lookback = 2 * n - 1
    if size <= lookback:
        return _array([NAN] * size)
    prev_h, prev_l, prev_c = h[0], lo[0], c[0]
    mdm = pdm = trs = 0.0
    for i in range(1, n):
        hi, low = h[i], lo[i]
        diff_p, diff_m = hi - prev_h, prev_l - low
        prev_h, prev_l = hi, low
        if diff_m > 0 and diff_p < diff_m:
            mdm += diff_m
        elif diff_p > 0 and diff_p > diff_m:
            pdm += diff_p
        trs += _true_range(hi, low, prev_c)
        prev_c = c[i]
    out = [NAN] * lookback
    append = out.append
    sum_dx = value = 0.0
    for i in range(n, size):
        hi, low = h[i], lo[i]
        diff_p, diff_m = hi - prev_h, prev_l - low
        prev_h, prev_l = hi, low
        mdm -= mdm / n
        pdm -= pdm / n
        if diff_m > 0 and diff_p < diff_m:
            mdm += diff_m
        elif diff_p > 0 and diff_p > diff_m:
            pdm += diff_p
        trs = trs - trs / n + _true_range(hi, low, prev_c)
        prev_c = c[i]
        dx = _dx(mdm, pdm, trs)
        if i < lookback:
            if dx == dx:
                sum_dx += dx
        elif i == lookback:
            if dx == dx:
                sum_dx += dx
            value = sum_dx / n
            append(value)
        else:
            if dx == dx:
                value = (value * (n - 1) + dx) / n
            append(value)
    return _array(out)


# ----------------------------------------------------------------------------- rolling std

def rolling_std(values: np.ndarray, n: int, ddof: int) -> np.ndarray:
    x = values.tolist()
    out = [NAN] * min(n - 1, len(x))
    append = out.append
    mean = ssq = peak = 0.0
    shift = x[0] if x else 0.0
    since = 0
    for i, val in enumerate(x):
        if i >= n:
            old = x[i - n] - shift
            delta = old - mean
            mean -= delta / (n - 1)
            ssq -= delta * (old - mean)
            k = n
        else:
            k = i + 1
        y = val - shift
        delta = y - mean
        mean += delta / k
        ssq += delta * (y - mean)
        since += 1
        if ssq > peak:
            peak = ssq
        if ssq < peak * _COLLAPSE or since >= n:
            shift = val
            mean = ssq = 0.0
            for j, v in enumerate(x[i - k + 1 : i + 1], 1):
                y = v - shift
                delta = y - mean
                mean += delta / j
                ssq += delta * (y - mean)
            peak, since = ssq, 0
        if k == n:
            var = ssq / (k - ddof)
            append(math.sqrt(var) if var > 0.0 else 0.0)
    return _array(out)


# ----------------------------------------------------------------------------- VWAP sessions

def _segment_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    if len(starts) == 1:
        return np.cumsum(values)
    lengths = np.diff(np.append(starts, len(values)))
    width = int(lengths.max())
    if len(starts) * width > 4 * len(values) + 1024:
        bounds = np.append(starts, len(values))
        return np.concatenate([np.cumsum(values[a:b]) for a, b in pairwise(bounds)])
    row = np.repeat(np.arange(len(starts)), lengths)
    col = np.arange(len(values)) - np.repeat(starts, lengths)
    grid = np.zeros((len(starts), width))
    grid[row, col] = values
    return np.cumsum(grid, axis=1)[row, col]


def session_vwap(tp: np.ndarray, v: np.ndarray, starts: np.ndarray) -> np.ndarray:
    if len(tp) == 0:
        return tp.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return _segment_cumsum(tp * v, starts) / _segment_cumsum(v, starts)


def session_std(tp: np.ndarray, v: np.ndarray, starts: np.ndarray) -> np.ndarray:
    out = []
    append = out.append
    restart = set(starts.tolist())
    weight = mean = ssq = 0.0
    for i, (x, w) in enumerate(zip(tp.tolist(), v.tolist())):
        if i in restart:
            weight = mean = ssq = 0.0
        if w > 0.0:
            if weight == 0.0:
                weight, mean, ssq = w, x, 0.0
            else:
                total = weight + w
                delta = x - mean
                r = delta * w / total
                mean += r
                ssq += weight * delta * r
                weight = total
        if weight == 0.0:
            append(NAN)
        else:
            var = ssq / weight
            append(math.sqrt(var) if var > 0.0 else 0.0)
    return _array(out)
