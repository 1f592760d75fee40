"""Pattern detectors that turn bars into :class:`~alphaloop.core.market.Signal` objects, their
registry, and the :class:`PatternEngine` that runs them per instrument.

Built-ins: ``ema_cross``, ``vwap_deviation``, ``volatility_breakout``, ``rsi_extremes``.
Register your own with :func:`register_detector` (a :class:`Detector` subclass with a ``name``
and declared ``params``).
"""

from alphaloop.patterns.base import Detector, Param, choice, duration, integer, number
from alphaloop.patterns.detectors import (
    BUILTIN_DETECTORS,
    EmaCross,
    RsiExtremes,
    VolatilityBreakout,
    VwapDeviation,
)
from alphaloop.patterns.engine import PatternEngine
from alphaloop.patterns.errors import BarOrderError, PatternError, UnknownDetectorError
from alphaloop.patterns.registry import (
    create_detector,
    detector_names,
    get_detector,
    register_detector,
)

__all__ = [
    "BUILTIN_DETECTORS",
    "BarOrderError",
    "Detector",
    "EmaCross",
    "Param",
    "PatternEngine",
    "PatternError",
    "RsiExtremes",
    "UnknownDetectorError",
    "VolatilityBreakout",
    "VwapDeviation",
    "choice",
    "create_detector",
    "detector_names",
    "duration",
    "get_detector",
    "integer",
    "number",
    "register_detector",
]
