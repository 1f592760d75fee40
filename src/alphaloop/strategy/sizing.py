"""Position sizing: from a decision score and the instrument's volatility to a target position.

ATR-based volatility targeting: a position whose stop sits ``atr_multiple`` ATRs away should lose
``risk_per_trade`` of equity when stopped out at full conviction, scaled down by conviction::

    units = equity * risk_per_trade * |score| / (atr_multiple * ATR)

with the direction from the score's sign. The size is then capped by ``max_position_size`` (units),
by the per-instrument exposure limit and by the room left under the gross exposure limit (both as
fractions of equity, by notional = |units| * price), and rounded down to a whole number of lots.

The result is a **target position** (signed units the instrument should hold), not an order:
``delta = target - current_position`` is what to send, so re-sizing on every decision is idempotent
and a weakening score reduces the position by itself. When the inputs cannot be trusted (NaN or
non-finite score, price, ATR, equity or position; price or ATR <= 0) there is no size: the target is
the current position and ``delta`` is 0, so a bad tick never opens, grows or liquidates anything.

Plain floats and ``math`` only: this runs on every decision, in backtests and live alike.
"""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, NamedTuple

from alphaloop.core.errors import ConfigError

if TYPE_CHECKING:
    from alphaloop.core.config import Settings

_isfinite = math.isfinite
_FLOAT_MAX = sys.float_info.max


class SizingResult(NamedTuple):
    """``target``: signed units to hold after the order; ``delta``: the order (target - current,
    0 means send nothing); ``reason``: what decided the size (``volatility_target``, the cap that
    bound it, or why there is no size); ``raw``: the uncapped volatility-targeted magnitude (0 when
    none was computed; saturates at the largest float), kept for the decision's "why did it trade" breakdown."""

    target: float
    delta: float
    reason: str
    raw: float = 0.0


def _number(cls: str, name: str, value: Any) -> float:
    # bool is an int subclass; True as a risk fraction is a bug, not 1.0.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{cls}.{name} = {value!r} is invalid: expected a number")
    f = float(value)
    if not _isfinite(f):
        raise ConfigError(f"{cls}.{name} = {value!r} is invalid: must be finite")
    return f


def check_number(cls: str, name: str, value: Any, *, lo: float, hi: float = math.inf,
           lo_open: bool = True) -> float:
    """Validate one numeric field: finite, within (lo, hi] (or [lo, hi] when not ``lo_open``)."""
    f = _number(cls, name, value)
    if (f <= lo if lo_open else f < lo) or f > hi:
        left = "(" if lo_open else "["
        right = f"{hi:g}]" if hi < math.inf else "inf)"
        raise ConfigError(f"{cls}.{name} = {value!r} is invalid: must be within {left}{lo:g}, {right}")
    return f


def floor_lots(units: float, lot: float) -> float:
    """``units`` (>= 0) rounded down to a multiple of ``lot``.

    ``0.3 / 0.1`` is 2.9999999999999996 in binary floating point; a plain floor would lose a whole
    lot, so a multiple within 1e-12 relative of ``units`` counts as reached.
    """
    q = units / lot
    if q >= 4503599627370496.0:  # 2**52 lots or more (or overflow): no lot is resolvable, keep as is
        return units
    n = math.floor(q)
    if (n + 1) * lot <= units * (1.0 + 1e-12):
        n += 1
    return n * lot


@dataclass(frozen=True, slots=True)
class SizingConfig:
    """How a score becomes a size. Validated once here, so the per-decision path checks nothing.

    * ``risk_per_trade``: fraction of equity lost at the stop at full conviction, in (0, 1].
    * ``atr_multiple``: stop distance in ATRs (> 0).
    * ``max_position_size``: cap in units per instrument (> 0; ``Settings.max_position_size``).
    * ``max_instrument_exposure`` / ``max_gross_exposure``: caps on notional as fractions of
      equity, for this instrument and for all instruments together (> 0; above 1 is leverage).
    * ``lot_size``: sizes are whole multiples of it (> 0).
    * ``min_score``: |score| below it targets flat (a dead band against noise), in [0, 1]
      (``Settings.min_signal_threshold``).
    * ``allow_short``: when False a negative score targets flat instead of short.
    """

    risk_per_trade: float = 0.01
    atr_multiple: float = 2.0
    max_position_size: float = 1000.0
    max_instrument_exposure: float = 1.0
    max_gross_exposure: float = 1.0
    lot_size: float = 1.0
    min_score: float = 0.0
    allow_short: bool = True

    def __post_init__(self) -> None:
        c = "SizingConfig"
        checked = {
            "risk_per_trade": check_number(c, "risk_per_trade", self.risk_per_trade, lo=0.0, hi=1.0),
            "atr_multiple": check_number(c, "atr_multiple", self.atr_multiple, lo=0.0),
            "max_position_size": check_number(c, "max_position_size", self.max_position_size, lo=0.0),
            "max_instrument_exposure": check_number(c, "max_instrument_exposure",
                                                    self.max_instrument_exposure, lo=0.0),
            "max_gross_exposure": check_number(c, "max_gross_exposure", self.max_gross_exposure, lo=0.0),
            "lot_size": check_number(c, "lot_size", self.lot_size, lo=0.0),
            "min_score": check_number(c, "min_score", self.min_score, lo=0.0, hi=1.0, lo_open=False),
        }
        if not isinstance(self.allow_short, bool):
            raise ConfigError(f"{c}.allow_short = {self.allow_short!r} is invalid: expected true or false")
        for name, value in checked.items():  # store ints and numpy scalars as plain floats
            object.__setattr__(self, name, value)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SizingConfig:
        """Defaults from the platform settings (``MAX_POSITION_SIZE``, ``MIN_SIGNAL_THRESHOLD``)."""
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"SizingConfig: unknown field(s) {', '.join(unknown)}")
        values: dict[str, Any] = {"max_position_size": settings.max_position_size,
                                  "min_score": settings.min_signal_threshold}
        values.update(overrides)
        return cls(**values)


DEFAULT_SIZING = SizingConfig()


def size_order(score: float, price: float, atr: float, equity: float, current_position: float = 0.0,
               config: SizingConfig = DEFAULT_SIZING, *, other_exposure: float = 0.0) -> SizingResult:
    """Target position for ``score`` in [-1, 1] (clamped) on an instrument at ``price`` with ``atr``.

    ``other_exposure`` is the gross notional (sum of |units| * price) already held in the *other*
    instruments; the gross cap leaves this one only the room above it. Never raises and never
    returns NaN, inf or an off-lot target (except when holding an existing off-lot position).
    """
    cur = float(current_position)
    if not _isfinite(cur):
        # Unknown holding: neither a target nor a delta can be derived from it. Send nothing.
        return SizingResult(0.0, 0.0, "invalid_position")
    # `not x > 0` is also true for NaN, so each test below rejects NaN as well.
    if not _isfinite(score):
        return SizingResult(cur, 0.0, "invalid_score")
    if not (price > 0 and _isfinite(price)):
        return SizingResult(cur, 0.0, "invalid_price")
    if not (atr > 0 and _isfinite(atr)):
        return SizingResult(cur, 0.0, "invalid_atr")
    if not _isfinite(equity):
        return SizingResult(cur, 0.0, "invalid_equity")
    if not (other_exposure >= 0 and _isfinite(other_exposure)):
        return SizingResult(cur, 0.0, "invalid_exposure")
    if equity <= 0:
        return SizingResult(0.0, -cur, "no_equity")  # nothing left to risk: flat

    conviction = min(abs(float(score)), 1.0)
    if conviction == 0.0:
        return SizingResult(0.0, -cur, "no_signal")
    if conviction < config.min_score:
        return SizingResult(0.0, -cur, "below_threshold")
    if score < 0 and not config.allow_short:
        return SizingResult(0.0, -cur, "no_short")

    # Each factor is finite and the divisors are > 0, so raw is in [0, inf] and never NaN;
    # the finite max_position_size cap below bounds it.
    raw = float(equity) * config.risk_per_trade * conviction / atr / config.atr_multiple
    if raw > _FLOAT_MAX:  # an ATR of ~1e-300: report the largest float, never inf
        raw = _FLOAT_MAX
    size, reason = raw, "volatility_target"
    if config.max_position_size < size:
        size, reason = config.max_position_size, "max_position_size"
    cap = config.max_instrument_exposure * equity / price
    if cap < size:
        size, reason = cap, "instrument_exposure"
    cap = max(0.0, config.max_gross_exposure * equity - other_exposure) / price
    if cap < size:
        size, reason = cap, "gross_exposure"
    size = floor_lots(size, config.lot_size)
    if size == 0.0 and reason == "volatility_target":
        reason = "below_lot_size"
    target = size if score > 0 else (-size or 0.0)  # never a signed zero
    delta = target - cur
    if not _isfinite(delta):  # only for absurd positions near the float limit: send nothing
        return SizingResult(cur, 0.0, "invalid_position", raw)
    return SizingResult(target, delta, reason, raw)


__all__ = ["DEFAULT_SIZING", "SizingConfig", "SizingResult", "floor_lots", "size_order"]
