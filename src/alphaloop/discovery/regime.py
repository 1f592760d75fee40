"""Market-regime features of a range of bars: what kind of market a backtest ran in.

The strategy-evaluation model learns which strategies work in which conditions, so every feedback
record carries these numbers for the range its backtest covered. They are scale-free (a feature of
EURUSD at 1.07 is comparable with one of BTC at 40,000) and use the whole range at once:

* ``trend_strength``: mean of Wilder's ADX(14) / 100 over the range (1 for a market that only
  makes higher highs and higher lows, near 0.2 for noise);
* ``drift``: mean log return per bar;
* ``volatility``: sample standard deviation (ddof=1) of the log returns, per bar, not annualised;
* ``efficiency_ratio``: Kaufman's |close_last - close_first| / sum |close_t - close_{t-1}|
  (1 for a straight line, near 0 for a market that goes nowhere);
* ``autocorrelation``: lag-1 autocorrelation of the log returns, the usual estimator
  sum (r_t - m)(r_{t+1} - m) / sum (r_t - m)^2 (negative: mean-reverting, positive: trending);
* ``range_rel``: mean (high - low) / close, the typical bar's range;
* ``n_bars``: how many bars the range holds.

Degenerate cases have a defined value rather than NaN, so a record never carries a hole: a flat
price has efficiency ratio 0 (it went nowhere) and constant returns have autocorrelation 0 (there
is no variation whose persistence could be measured; returns count as constant when their spread is
below 1e-9 of their size, the rounding that exp/log leave on a price built to grow at a fixed rate).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alphaloop.discovery.errors import DiscoveryInputError, InsufficientDataError
from alphaloop.indicators import adx

REGIME_FEATURES: tuple[str, ...] = ("trend_strength", "drift", "volatility", "efficiency_ratio",
                                    "autocorrelation", "range_rel", "n_bars")
MIN_BARS = 50  # ADX(14) needs 28 bars before its first value; fewer than 50 leave too few to average
ADX_PERIOD = 14
_COLUMNS = ("open", "high", "low", "close", "volume")
_CONSTANT_TOL = 1e-9  # relative spread of log returns below which they count as constant


def _check(bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(bars, pd.DataFrame):
        raise DiscoveryInputError(f"regime features need a DataFrame of bars, got {type(bars).__name__}")
    source = bars.attrs.get("source") or bars.attrs.get("instrument") or "bars"
    missing = [c for c in _COLUMNS if c not in bars.columns]
    if missing:
        raise DiscoveryInputError(f"{source}: regime features need columns {', '.join(_COLUMNS)}; "
                                  f"missing {', '.join(missing)}")
    if len(bars) < MIN_BARS:
        raise InsufficientDataError(f"{source}: regime features need at least {MIN_BARS} bars, got {len(bars)}")
    out = []
    for col in ("high", "low", "close"):
        a = bars[col].to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~(np.isfinite(a) & (a > 0)))
        if len(bad):
            raise DiscoveryInputError(f"{source}: field '{col}' must be finite and > 0, got {a[bad[0]]} at "
                                      f"row {bad[0]} ({bars.index[bad[0]]})")
        out.append(a)
    return out[0], out[1], out[2]


def _constant(r: np.ndarray) -> bool:
    # exp/log round trips leave ~1e-16 wobble on returns that are constant by construction
    return float(np.ptp(r)) <= _CONSTANT_TOL * max(float(np.abs(r).max()), np.finfo(float).tiny)


def _autocorrelation(r: np.ndarray) -> float:
    d = r - r.mean()
    return float(d[:-1] @ d[1:]) / float(d @ d)


def regime_features(bars: pd.DataFrame) -> dict[str, float]:
    """The ``REGIME_FEATURES`` of ``bars`` (columns open/high/low/close/volume, time-ordered), in that
    order. Deterministic. Raises ``InsufficientDataError`` for fewer than ``MIN_BARS`` bars and
    ``DiscoveryInputError`` naming the field and row for a missing column or a non-positive price."""
    h, lo, c = _check(bars)
    r = np.diff(np.log(c))
    path = float(np.abs(np.diff(c)).sum())
    trend = adx(h, lo, c, ADX_PERIOD)
    trend = trend[np.isfinite(trend)]
    flat = _constant(r)
    features = {
        "trend_strength": float(trend.mean()) / 100.0 if len(trend) else 0.0,
        "drift": float(r.mean()),
        "volatility": 0.0 if flat else float(r.std(ddof=1)),
        "efficiency_ratio": abs(float(c[-1] - c[0])) / path if path > 0 else 0.0,
        "autocorrelation": 0.0 if flat else _autocorrelation(r),
        "range_rel": float(np.mean((h - lo) / c)),
        "n_bars": float(len(c)),
    }
    for k, v in features.items():  # a guard: valid prices cannot give these, a future feature might
        if not math.isfinite(v):
            raise DiscoveryInputError(f"regime feature {k!r} is {v} for these bars")
    return {k: features[k] for k in REGIME_FEATURES}


__all__ = ["MIN_BARS", "REGIME_FEATURES", "regime_features"]
