"""Built-in pattern detectors (importing this package registers them)."""

from alphaloop.patterns.detectors.ema_cross import EmaCross
from alphaloop.patterns.detectors.rsi_extremes import RsiExtremes
from alphaloop.patterns.detectors.volatility_breakout import VolatilityBreakout
from alphaloop.patterns.detectors.vwap_deviation import VwapDeviation

BUILTIN_DETECTORS = (EmaCross, VwapDeviation, VolatilityBreakout, RsiExtremes)

__all__ = ["BUILTIN_DETECTORS", "EmaCross", "RsiExtremes", "VolatilityBreakout", "VwapDeviation"]
