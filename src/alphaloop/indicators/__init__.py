"""Technical indicators, each in two forms that agree exactly.

* a vectorised function over numpy arrays (``sma(close, n)``, ``atr(high, low, close, n)``, ...)
  returning NaN during the warm-up, and
* a streaming class with the same parameters (``SMA(n)``, ``ATR(n)``, ...) whose
  ``update(...)`` takes one bar in O(1) and returns the same value the vectorised form has at
  that bar (NaN in the warm-up); ``.value`` holds the last one.

Where TA-Lib has the indicator, the values are TA-Lib's (its default parameters, default
compatibility, unstable period 0) to ~1e-12 relative; multi-output indicators return named
tuples in TA-Lib's order. SMA (and the middle Bollinger band) is pandas' rolling mean, which
the streaming SMA replays bit for bit. Rolling standard deviations (Bollinger, z-score,
volatility) use an accurate shifted Welford with exact window refreshes (pandas' own is ~1e-9
off on FX closes). Streaming equals vectorised bit for bit for every indicator except WMA,
whose O(1) running sums agree to ~1e-15 between exact refreshes every ``n`` values.

The vectorised recursions (EMA, WMA, MACD, RSI, true range, ATR, ADX, the rolling standard
deviation, VWAP sums and deviation) run as numba kernels (:mod:`alphaloop.indicators._kernels`):
the streaming arithmetic in the same order, compiled on first use and cached on disk; importing
this package does not import numba.

Input: equal-length 1-D series; leading NaN is skipped (a warm-up inherited from another
indicator), NaN after the first valid value, infinities, bad periods and (streaming, timed)
bars out of order raise :class:`IndicatorError`.
"""

from alphaloop.indicators.errors import IndicatorError
from alphaloop.indicators.momentum import MACD, RSI, MACDResult, Stoch, StochResult, macd, rsi, stoch
from alphaloop.indicators.moving_averages import EMA, SMA, WMA, ema, sma, wma
from alphaloop.indicators.statistics import ZScore, zscore
from alphaloop.indicators.trend import ADX, adx
from alphaloop.indicators.volatility import (
    ATR,
    BBands,
    BBandsResult,
    TrueRange,
    Volatility,
    atr,
    bbands,
    true_range,
    volatility,
)
from alphaloop.indicators.volume import (
    OBV,
    VWAP,
    VWAPBands,
    VWAPBandsResult,
    obv,
    vwap,
    vwap_bands,
    vwap_std,
)

__all__ = [
    "ADX",
    "ATR",
    "EMA",
    "MACD",
    "OBV",
    "RSI",
    "SMA",
    "VWAP",
    "WMA",
    "BBands",
    "BBandsResult",
    "IndicatorError",
    "MACDResult",
    "Stoch",
    "StochResult",
    "TrueRange",
    "VWAPBands",
    "VWAPBandsResult",
    "Volatility",
    "ZScore",
    "adx",
    "atr",
    "bbands",
    "ema",
    "macd",
    "obv",
    "rsi",
    "sma",
    "stoch",
    "true_range",
    "volatility",
    "vwap",
    "vwap_bands",
    "vwap_std",
    "wma",
    "zscore",
]
