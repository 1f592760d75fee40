"""Compiled loops behind the vectorised indicators: numba ``njit`` kernels, compiled on first use.

Each kernel is the streaming form's arithmetic as one loop over a whole array, operation by
operation and in the same order (no ``fastmath``, no ``parallel``): compiled without fast-math
flags, LLVM neither reorders nor contracts ``a * b + c`` into a fused multiply-add, so every
value is the same IEEE double the streaming update computes, bit for bit. The tests compare
each kernel with the pure-Python loop it replaced and check the machine code for fused
multiply-adds.

Nothing compiles, and numba is not even imported, until a kernel is first called: importing
:mod:`alphaloop.indicators` stays cheap. Compiled code is cached on disk (``cache=True``: the
package's ``__pycache__``, else numba's user-wide cache directory); where no cache directory is
writable the kernel is compiled in memory with a warning instead (numba itself would raise).
Each kernel has one explicit signature (contiguous float64 inputs, read-only or not, int64
parameters, and contiguous outputs), so it compiles once, not once per argument layout. Callers
pass the contiguous arrays :func:`~alphaloop.indicators._validation.prepare` returns and write
into views of their full-length result (:func:`~alphaloop.indicators._validation.output`), so
no output is allocated twice or copied.

Divisions use numpy's error model (x / 0 is inf or NaN, never ``ZeroDivisionError``); no
kernel divides by zero except the VWAP of a session without volume (0 / 0 = NaN, as numpy).
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable
from functools import update_wrapper
from typing import Any

import numpy as np

from alphaloop.indicators._rolling import _COLLAPSE

NAN = math.nan
# WMA sums its windows a block of outputs at a time, one weight per pass (see :func:`wma`).
_WMA_BLOCK = 2048

_LOCK = threading.Lock()


class Kernel:
    """A function compiled by numba on its first call; ``py_func`` is the plain Python function.

    ``args`` names the argument types, one letter each: ``x`` a contiguous float64 array
    (read-only accepted), ``s`` a contiguous int64 array, ``i`` an int64, ``o`` a contiguous
    writable float64 array: an output the kernel fills completely (NaN in the warm-up), so the
    caller can pass a view of its final full-length result and nothing is copied.
    """

    def __init__(self, func: Callable[..., Any], args: str):
        update_wrapper(self, func)
        self.py_func = func
        self.args = args
        self._compiled: Callable[..., Any] | None = None

    def __call__(self, *args: Any) -> Any:
        compiled = self._compiled
        if compiled is None:
            compiled = self.compile()
        return compiled(*args)

    def compile(self) -> Callable[..., Any]:
        """Compile (or load from numba's cache) now; returns the numba dispatcher."""
        with _LOCK:
            if self._compiled is None:
                self._compiled = _njit(self.py_func, self.args)
            return self._compiled


def signature(args: str) -> tuple[Any, ...]:
    """The numba argument types named by ``args`` (see :class:`Kernel`); imports numba."""
    from numba import types

    codes = {
        "x": types.Array(types.float64, 1, "C", readonly=True),
        "s": types.Array(types.int64, 1, "C", readonly=True),
        "i": types.int64,
        "o": types.Array(types.float64, 1, "C"),
    }
    return tuple(codes[c] for c in args)


def _njit(func: Callable[..., Any], args: str) -> Callable[..., Any]:
    from numba import njit

    sig = signature(args)
    try:
        return njit(sig, cache=True, error_model="numpy")(func)
    except (RuntimeError, OSError) as exc:  # no writable cache directory (numba raises, not warns)
        warnings.warn(f"alphaloop.indicators: cannot cache the compiled {func.__name__} kernel "
                      f"({exc}); compiling it in memory", RuntimeWarning, stacklevel=4)
        return njit(sig, cache=False, error_model="numpy")(func)


def kernel(args: str) -> Callable[[Callable[..., Any]], Kernel]:
    """Declare a lazily compiled kernel with the argument types ``args`` (see :class:`Kernel`)."""
    def wrap(func: Callable[..., Any]) -> Kernel:
        return Kernel(func, args)
    return wrap


# ----------------------------------------------------------------------------- moving averages

@kernel("xio")
def ema(x, n, out):
    """TA-Lib's EMA (k = 2/(n+1), seeded with the mean of the first n values); a copy for n=1."""
    size = x.shape[0]
    if n == 1:  # TA-Lib copies the input for a 1-period average
        for i in range(size):
            out[i] = x[i]
        return
    if size < n:
        out[:] = NAN
        return
    k = 2.0 / (n + 1)
    total = 0.0
    for i in range(n):
        total += x[i]
    prev = total / n
    out[: n - 1] = NAN
    out[n - 1] = prev
    for i in range(n, size):
        prev = (x[i] - prev) * k + prev
        out[i] = prev


@kernel("xiiiooo")
def macd(x, fast, slow, signal, line_out, sig_out, hist_out):
    """TA-Lib's MACD (``fast < slow``) as three EMAs in one pass: the slow EMA of ``x``, the fast
    EMA of ``x[slow - fast:]`` (its seed ends where the slow one's does), the line (fast - slow)
    from index ``slow - 1`` and the signal EMA of the line; all three outputs start at
    ``slow - 1 + signal - 1``. The same arithmetic as :func:`ema` applied to each series."""
    size = x.shape[0]
    first = min(slow - 1 + signal - 1, size)
    line_out[:first] = NAN
    sig_out[:first] = NAN
    hist_out[:first] = NAN
    if size < slow:
        return
    ks = 2.0 / (slow + 1)
    kf = 2.0 / (fast + 1)
    kg = 2.0 / (signal + 1)
    total = 0.0
    for i in range(slow):
        total += x[i]
    s = total / slow
    if fast == 1:
        f = x[slow - 1]
    else:
        total = 0.0
        for i in range(slow - fast, slow):
            total += x[i]
        f = total / fast
    g = 0.0  # the signal EMA (its seed sum until the signal-th line value)
    for i in range(slow - 1, size):
        if i >= slow:
            v = x[i]
            s = (v - s) * ks + s
            f = v if fast == 1 else (v - f) * kf + f
        line = f - s
        j = i - (slow - 1)  # index of this value in the line series
        if signal == 1:
            g = line
        elif j < signal - 1:
            g += line
            continue
        elif j == signal - 1:
            g += line
            g = g / signal
        else:
            g = (line - g) * kg + g
        line_out[i] = line
        sig_out[i] = g
        hist_out[i] = line - g


@kernel("xio")
def wma(x, n, out):
    """Each window's weighted sum ``x[i] * 1.0 + x[i+1] * 2.0 + ... + x[i+n-1] * n``, left to
    right, over the divider. Blocks of outputs take one weight per pass (the order within each
    window is unchanged, and the passes vectorise)."""
    size = x.shape[0]
    if size < n:
        out[:] = NAN
        return
    out[: n - 1] = NAN
    m = size - n + 1
    divider = (n * (n + 1)) >> 1
    acc = np.empty(min(m, _WMA_BLOCK))
    for b0 in range(0, m, _WMA_BLOCK):
        count = min(_WMA_BLOCK, m - b0)
        for i in range(count):
            acc[i] = x[b0 + i] * 1.0
        j = 1
        while j + 3 < n:  # four weights per pass, still added one at a time, in order
            w0 = float(j + 1)
            w1 = float(j + 2)
            w2 = float(j + 3)
            w3 = float(j + 4)
            x0 = x[b0 + j : b0 + j + count]
            x1 = x[b0 + j + 1 : b0 + j + 1 + count]
            x2 = x[b0 + j + 2 : b0 + j + 2 + count]
            x3 = x[b0 + j + 3 : b0 + j + 3 + count]
            for i in range(count):
                a = acc[i] + x0[i] * w0
                a = a + x1[i] * w1
                a = a + x2[i] * w2
                acc[i] = a + x3[i] * w3
            j += 4
        while j < n:
            w0 = float(j + 1)
            x0 = x[b0 + j : b0 + j + count]
            for i in range(count):
                acc[i] += x0[i] * w0
            j += 1
        dest = out[n - 1 + b0 : n - 1 + b0 + count]
        for i in range(count):
            dest[i] = acc[i] / divider


# ----------------------------------------------------------------------------- momentum

@kernel("xio")
def rsi(x, n, out):
    """Wilder's RSI as TA-Lib: seed sums over the first n changes, then Wilder smoothing."""
    size = x.shape[0]
    if size <= n:
        out[:] = NAN
        return
    prev = x[0]
    gain = 0.0
    loss = 0.0
    for i in range(1, n + 1):
        v = x[i]
        d = v - prev
        prev = v
        if d < 0.0:
            loss -= d
        else:
            gain += d
    loss /= n
    gain /= n
    out[:n] = NAN
    total = gain + loss
    out[n] = 100.0 * (gain / total) if total != 0.0 else 0.0
    m = n - 1
    for i in range(n + 1, size):
        v = x[i]
        d = v - prev
        prev = v
        # Branch-free (a random walk defeats the branch predictor), and still the same doubles:
        # subtracting 0.0 changes no double, and adding 0.0 changes only -0.0, which gain (a
        # sum of non-negative terms starting from +0.0) never is.
        neg = d < 0.0
        loss = (loss * m - (d if neg else 0.0)) / n
        gain = (gain * m + (0.0 if neg else d)) / n
        total = gain + loss
        value = 100.0 * (gain / total)  # NaN where total == 0 (numpy error model), not kept
        out[i] = value if total != 0.0 else 0.0


# ----------------------------------------------------------------------------- true range / ATR / ADX

@kernel("xxxo")
def true_range(h, lo, c, out):
    """max(high - low, |high - prev close|, |low - prev close|); NaN on the first bar."""
    size = h.shape[0]
    if size == 0:
        return
    out[0] = NAN
    for i in range(1, size):
        prev_c = c[i - 1]
        tr = h[i] - lo[i]
        t = abs(h[i] - prev_c)
        if t > tr:
            tr = t
        t = abs(lo[i] - prev_c)
        if t > tr:
            tr = t
        out[i] = tr


@kernel("xxxio")
def atr(h, lo, c, n, out):
    """TA-Lib's ATR: the mean of the first n true ranges, then ``(prev * (n - 1) + tr) / n``."""
    size = h.shape[0]
    if size <= n:
        out[:] = NAN
        return
    out[:n] = NAN
    total = 0.0
    prev = 0.0
    m = n - 1
    for i in range(1, size):
        prev_c = c[i - 1]
        tr = h[i] - lo[i]
        t = abs(h[i] - prev_c)
        if t > tr:
            tr = t
        t = abs(lo[i] - prev_c)
        if t > tr:
            tr = t
        if i < n:
            total += tr
        elif i == n:
            total += tr
            prev = total / n
            out[i] = prev
        else:
            prev = (prev * m + tr) / n
            out[i] = prev


@kernel("xxxio")
def adx(h, lo, c, n, out):
    """TA-Lib's ADX (see :mod:`alphaloop.indicators.trend`); first value at index ``2n - 1``."""
    size = h.shape[0]
    lookback = 2 * n - 1
    if size <= lookback:
        out[:] = NAN
        return
    out[:lookback] = NAN
    prev_h = h[0]
    prev_l = lo[0]
    prev_c = c[0]
    mdm = 0.0
    pdm = 0.0
    trs = 0.0
    for i in range(1, n):  # plain sums of the first n-1 one-bar DM and TR
        hi = h[i]
        low = lo[i]
        diff_p = hi - prev_h
        diff_m = prev_l - low
        prev_h = hi
        prev_l = low
        if diff_m > 0 and diff_p < diff_m:
            mdm += diff_m
        elif diff_p > 0 and diff_p > diff_m:
            pdm += diff_p
        tr = hi - low
        t = abs(hi - prev_c)
        if t > tr:
            tr = t
        t = abs(low - prev_c)
        if t > tr:
            tr = t
        trs += tr
        prev_c = c[i]
    sum_dx = 0.0
    value = 0.0
    m = n - 1
    for i in range(n, size):
        hi = h[i]
        low = lo[i]
        diff_p = hi - prev_h
        diff_m = prev_l - low
        prev_h = hi
        prev_l = low
        mdm -= mdm / n
        pdm -= pdm / n
        if diff_m > 0 and diff_p < diff_m:
            mdm += diff_m
        elif diff_p > 0 and diff_p > diff_m:
            pdm += diff_p
        tr = hi - low
        t = abs(hi - prev_c)
        if t > tr:
            tr = t
        t = abs(low - prev_c)
        if t > tr:
            tr = t
        trs = trs - trs / n + tr
        prev_c = c[i]
        # DX, or NaN where TA-Lib skips the bar (zero range or zero directional movement)
        dx = NAN
        if trs != 0.0:
            minus_di = 100.0 * (mdm / trs)
            plus_di = 100.0 * (pdm / trs)
            total = minus_di + plus_di
            if total != 0.0:
                dx = 100.0 * (abs(minus_di - plus_di) / total)
        if i < lookback:  # the first ADX is the mean of the first n DX
            if dx == dx:
                sum_dx += dx
        elif i == lookback:
            if dx == dx:
                sum_dx += dx
            value = sum_dx / n
            out[i] = value
        else:
            if dx == dx:
                value = (value * m + dx) / n
            out[i] = value


# ----------------------------------------------------------------------------- log returns

@kernel("xo")
def log_returns(c, out):
    """``log(c[i+1] / c[i])`` with the C library's ``log`` (what ``math.log`` calls in the
    streaming form): numpy's own vectorised ``np.log`` may differ from it in the last bit."""
    for i in range(c.shape[0] - 1):
        out[i] = math.log(c[i + 1] / c[i])


# ----------------------------------------------------------------------------- rolling std

@kernel("xiio")
def rolling_std(x, n, ddof, out):
    """:class:`~alphaloop.indicators._rolling.RollingStd` over an array (NaN until the window
    fills): shifted Welford add/remove, the window recomputed every ``n`` values and whenever
    the sum of squares collapses below a tenth of its peak."""
    size = x.shape[0]
    mean = 0.0
    ssq = 0.0
    peak = 0.0
    shift = x[0] if size > 0 else 0.0
    since = 0
    for i in range(size):
        val = x[i]
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
            mean = 0.0
            ssq = 0.0
            for j in range(1, k + 1):
                y = x[i - k + j] - shift
                delta = y - mean
                mean += delta / j
                ssq += delta * (y - mean)
            peak = ssq
            since = 0
        if k == n:
            var = ssq / (k - ddof)
            out[i] = math.sqrt(var) if var > 0.0 else 0.0
        else:
            out[i] = NAN


# ----------------------------------------------------------------------------- VWAP sessions

@kernel("xxso")
def session_vwap(tp, v, starts, out):
    """sum(tp * v) / sum(v) from the start of each session (``starts``: increasing, from 0);
    each session's sums start from its first value (as numpy's cumsum), NaN while they are 0."""
    size = tp.shape[0]
    nstarts = starts.shape[0]
    nxt = 0
    pv = 0.0
    cum_v = 0.0
    for i in range(size):
        w = v[i]
        p = tp[i] * w
        if nxt < nstarts and i == starts[nxt]:
            nxt += 1
            pv = p
            cum_v = w
        else:
            pv += p
            cum_v += w
        out[i] = pv / cum_v


@kernel("xxso")
def session_std(tp, v, starts, out):
    """West's weighted Welford update (:class:`~alphaloop.indicators.volume._WeightedStd`),
    restarted at each session; NaN until a session has volume."""
    size = tp.shape[0]
    nstarts = starts.shape[0]
    nxt = 0
    weight = 0.0
    mean = 0.0
    ssq = 0.0
    for i in range(size):
        if nxt < nstarts and i == starts[nxt]:
            nxt += 1
            weight = 0.0
            mean = 0.0
            ssq = 0.0
        x = tp[i]
        w = v[i]
        if w > 0.0:
            if weight == 0.0:  # first weighted bar: exact mean, no spread yet
                weight = w
                mean = x
                ssq = 0.0
            else:
                total = weight + w
                delta = x - mean
                r = delta * w / total
                mean += r
                ssq += weight * delta * r
                weight = total
        if weight == 0.0:
            out[i] = NAN
        else:
            var = ssq / weight
            out[i] = math.sqrt(var) if var > 0.0 else 0.0


KERNELS: tuple[Kernel, ...] = (ema, macd, wma, rsi, true_range, atr, adx, rolling_std, session_vwap,
                               session_std)
