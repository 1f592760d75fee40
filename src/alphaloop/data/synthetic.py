"""Deterministic synthetic OHLCV bars for demos, tests and benchmarks.

Every random number comes from one ``numpy.random.Generator(PCG64(seed))`` drawn in a fixed order,
so a seed always gives the same bars. The sequential models (an OU process, GARCH variance) are
linear recurrences solved with cumulative sums in blocks (``_linear_recurrence``) instead of a Python
loop per bar, so 200,000 bars take milliseconds.

Volatility and drift are annualised and scaled to the bar length, so daily and one-minute bars of the
same regime look alike at their own scale.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from alphaloop.core.market import OHLCV

Regime = Literal["mixed", "trend", "mean_revert", "vol_cluster"]
REGIMES: tuple[str, ...] = ("mixed", "trend", "mean_revert", "vol_cluster")

_YEAR_S = 365.25 * 86400.0
_ANNUAL_VOL = 0.25
_ANNUAL_DRIFT = 0.35          # trend regime: |drift| per year
_HALF_LIFE_BARS = 20.0        # mean-revert regime: half-life of a deviation, in bars
_GARCH_ALPHA, _GARCH_BETA = 0.09, 0.89
_RANGE_SCALE = 0.6            # intrabar excursion beyond open/close, in per-bar sigmas
_BLOCK_MIN, _BLOCK_MAX = 60, 250  # mixed regime: bars per block
_DAILY_VOLUME = 1_000_000.0
_LOG_LIMIT = 300.0            # keeps exp() of the running log-product far from float64 overflow


def _linear_recurrence(a: np.ndarray, b: np.ndarray, x0: float) -> np.ndarray:
    """Solve ``x[t] = a[t] * x[t-1] + b[t]`` (``x[-1] = x0``, every ``a > 0``) without a per-step loop.

    With ``P[t] = a[0] * ... * a[t]``, ``x[t] = P[t] * (x0 + sum_{k<=t} b[k] / P[k])``. ``P`` under- or
    overflows over long spans, so the series is cut into blocks where ``|log P|`` stays below
    ``_LOG_LIMIT`` and restarted from the last value of the previous block.
    """
    n = len(a)
    out = np.empty(n)
    logp = np.cumsum(np.log(a))
    start, prev, base = 0, float(x0), 0.0
    while start < n:
        window = logp[start:] - base
        over = np.flatnonzero(np.abs(window) > _LOG_LIMIT)
        end = start + max(int(over[0]) if over.size else n - start, 1)
        p = np.exp(window[: end - start])
        x = p * (prev + np.cumsum(b[start:end] / p))
        out[start:end] = x
        prev, base, start = float(x[-1]), float(logp[end - 1]), end
    return out


def _bar_seconds(freq: str, start: pd.Timestamp) -> float:
    offset = to_offset(freq)
    try:
        return offset.nanos / 1e9
    except ValueError:  # calendar frequency (B, W, MS): average length over a year of periods
        return ((start + 12 * offset) - start).total_seconds() / 12


def _trend(z: np.ndarray, sigma: float, drift: np.ndarray | float) -> np.ndarray:
    return drift - 0.5 * sigma**2 + sigma * z


def _mean_revert(z: np.ndarray, sigma: float) -> np.ndarray:
    """Returns of an OU (AR(1)) log price around its start: ``y[t] = phi * y[t-1] + sigma * z[t]``."""
    phi = 0.5 ** (1.0 / _HALF_LIFE_BARS)
    y = _linear_recurrence(np.full(len(z), phi), sigma * z, 0.0)
    return np.diff(y, prepend=0.0)


def _garch(z: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) returns and their conditional sigma, unconditional variance ``sigma**2``.

    ``s[t] = omega + alpha * r[t-1]**2 + beta * s[t-1]`` with ``r = sqrt(s) * z`` is linear in ``s``:
    ``s[t] = (alpha * z[t-1]**2 + beta) * s[t-1] + omega``.
    """
    var = sigma**2
    omega = var * (1.0 - _GARCH_ALPHA - _GARCH_BETA)
    s = np.empty(len(z))
    s[0] = var
    if len(z) > 1:
        s[1:] = _linear_recurrence(_GARCH_ALPHA * z[:-1] ** 2 + _GARCH_BETA, np.full(len(z) - 1, omega), var)
    vol = np.sqrt(s)
    return vol * z - 0.5 * s, vol


def generate_bars(n: int, *, seed: int, start: str | pd.Timestamp = "2020-01-01", freq: str = "1D",
                  start_price: float = 100.0, regime: Regime = "mixed",
                  instrument: str = "SYNTH") -> pd.DataFrame:
    """``n`` bars following ``regime``, in the loader's output contract.

    Regimes: ``trend`` (drift of ±35%/year, sign drawn from the seed), ``mean_revert`` (OU on the log
    price, half-life 20 bars), ``vol_cluster`` (GARCH(1,1) returns), ``mixed`` (blocks of 60-249 bars,
    each one of the three, trends in either direction). Open is the previous close; high and low reach
    beyond open/close by a random fraction of the bar's volatility; volume grows with the bar's move.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; expected one of {', '.join(REGIMES)}")
    if not start_price > 0:
        raise ValueError(f"start_price must be positive, got {start_price}")
    t0 = pd.Timestamp(start)
    t0 = t0.tz_localize("UTC") if t0.tz is None else t0.tz_convert("UTC")
    try:
        index = pd.date_range(t0, periods=n, freq=freq, name="time").as_unit("ns")
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        raise ValueError(f"{n} bars of {freq} from {t0} run past 2262-04-11, the last time the "
                         "platform's nanosecond timestamps can hold") from None
    bar_s = _bar_seconds(freq, t0)
    sigma = _ANNUAL_VOL * np.sqrt(bar_s / _YEAR_S)
    mu = _ANNUAL_DRIFT * bar_s / _YEAR_S

    rng = np.random.Generator(np.random.PCG64(seed))
    z = rng.standard_normal(n)
    if regime == "trend":
        r, vol = _trend(z, sigma, mu * rng.choice((-1.0, 1.0))), np.full(n, sigma)
    elif regime == "mean_revert":
        r, vol = _mean_revert(z, sigma), np.full(n, sigma)
    elif regime == "vol_cluster":
        r, vol = _garch(z, sigma)
    else:
        lengths = rng.integers(_BLOCK_MIN, _BLOCK_MAX, size=n // _BLOCK_MIN + 1)
        kinds = rng.integers(0, 3, size=lengths.size)
        signs = rng.choice((-1.0, 1.0), size=lengths.size)
        block = np.searchsorted(np.cumsum(lengths), np.arange(n), side="right")
        kind = kinds[block]
        r_garch, vol_garch = _garch(z, sigma)
        r = np.choose(kind, (_trend(z, sigma, mu * signs[block]), _mean_revert(z, sigma), r_garch))
        vol = np.where(kind == 2, vol_garch, sigma)
    up, down, noise = rng.standard_normal((3, n))

    close = start_price * np.exp(np.cumsum(r))
    open_ = np.concatenate(([start_price], close[:-1]))
    # exp(x) >= 1 for x >= 0, so high >= max(open, close) and low <= min(open, close) hold exactly.
    high = np.maximum(open_, close) * np.exp(_RANGE_SCALE * vol * np.abs(up))
    low = np.minimum(open_, close) * np.exp(-_RANGE_SCALE * vol * np.abs(down))
    base = _DAILY_VOLUME * bar_s / 86400.0
    volume = np.rint(base * np.exp(0.25 * noise) * (1.0 + 2.0 * np.abs(r) / vol))

    df = pd.DataFrame(dict(zip(OHLCV, (open_, high, low, close, volume))), index=index)
    df.attrs = {"instrument": instrument, "source": f"synthetic(seed={seed}, regime={regime})"}
    return df
