"""Commission and slippage models.

Commission is ``fixed + |size| * price * rate + |size| * per_unit`` per fill, the first two terms
evaluated exactly as backtesting.py does so that sizing and cash agree with it to the last bit.
Slippage moves a market or stop fill price against the trader; limit fills are never slipped
(a limit price is a guarantee).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from alphaloop.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Commission:
    rate: float = 0.0  # fraction of traded value, e.g. 0.002
    per_unit: float = 0.0  # currency per unit traded
    fixed: float = 0.0  # currency per fill

    def __post_init__(self) -> None:
        if not -0.1 <= self.rate < 0.1:
            raise ConfigError(f"commission rate {self.rate} must be within [-0.1, 0.1) (0.002 = 0.2%)")
        if self.fixed < 0 or self.per_unit < 0:
            raise ConfigError("fixed and per-unit commission must be >= 0")

    def cost(self, size: float, price: float) -> float:
        c = self.fixed + abs(size) * price * self.rate
        if self.per_unit:
            c += abs(size) * self.per_unit
        return c

    def cost_function(self) -> Callable[[float, float], float]:
        """``cost`` as a closure over local constants: the broker calls it several times per fill."""
        fixed, rate, per_unit = self.fixed, self.rate, self.per_unit
        if per_unit:
            return lambda size, price: fixed + abs(size) * price * rate + abs(size) * per_unit
        return lambda size, price: fixed + abs(size) * price * rate


@dataclass(frozen=True, slots=True)
class NoSlippage:
    def adjust(self, price: float, size: float, volume: float) -> float:
        return price

    def max_fill(self, volume: float) -> float:
        return math.inf


@dataclass(frozen=True, slots=True)
class FixedSlippage:
    """A constant adverse move of ``bps`` basis points on every market/stop fill."""

    bps: float

    def __post_init__(self) -> None:
        if self.bps < 0:
            raise ConfigError(f"slippage {self.bps} bps must be >= 0")

    def adjust(self, price: float, size: float, volume: float) -> float:
        return price * (1.0 + math.copysign(self.bps * 1e-4, size))

    def max_fill(self, volume: float) -> float:
        return math.inf


@dataclass(frozen=True, slots=True)
class VolumeShareSlippage:
    """A fill takes at most ``max_share`` of the bar's volume (the rest stays pending for later bars);
    the price moves against the trader by ``impact * share**2`` (share = fill size / bar volume),
    the quadratic impact model zipline popularised.
    """

    max_share: float = 0.025
    impact: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.max_share <= 1:
            raise ConfigError(f"volume share {self.max_share} must be within (0, 1]")
        if self.impact < 0:
            raise ConfigError(f"price impact {self.impact} must be >= 0")

    def adjust(self, price: float, size: float, volume: float) -> float:
        share = min(abs(size) / volume, self.max_share) if volume > 0 else self.max_share
        return price * (1.0 + math.copysign(self.impact * share * share, size))

    def max_fill(self, volume: float) -> float:
        return self.max_share * volume
