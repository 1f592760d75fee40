"""``pattern_follow``: trade in the direction of one pattern detector's signals.

A long signal closes any short and buys ``fraction`` of equity; a short signal closes any long and
(unless ``long_only``) sells short. Signals weaker than ``min_strength`` are ignored. The detector
and its parameters are strategy parameters, so the discovery loop can search them like any other.
"""

from __future__ import annotations

from typing import Any

from alphaloop.core.errors import StrategyError
from alphaloop.core.market import Signal
from alphaloop.strategy.base import Context, Strategy
from alphaloop.strategy.registry import register_strategy

DETECTORS = ("ema_cross", "rsi_extremes")


@register_strategy
class PatternFollow(Strategy):
    name = "pattern_follow"
    params = {
        "detector": "ema_cross",
        "fast": 12, "slow": 26,  # ema_cross
        "rsi_period": 14, "lower": 30.0, "upper": 70.0,  # rsi_extremes (reversal mode)
        "min_strength": 0.0, "fraction": 0.95, "long_only": False,
    }

    def validate(self) -> None:
        if self.detector not in DETECTORS:
            raise StrategyError(f"pattern_follow: detector must be one of {', '.join(DETECTORS)}, "
                                f"got {self.detector!r}")
        if not 0 < self.fast < self.slow:
            raise StrategyError(f"pattern_follow needs 0 < fast < slow, got fast={self.fast}, slow={self.slow}")
        if not 0 < self.lower < self.upper < 100:
            raise StrategyError(f"pattern_follow needs 0 < lower < upper < 100, got {self.lower}, {self.upper}")
        if self.rsi_period < 2:
            raise StrategyError(f"pattern_follow: rsi_period must be >= 2, got {self.rsi_period}")
        if not 0 <= self.min_strength <= 1:
            raise StrategyError(f"pattern_follow: min_strength must be within [0, 1], got {self.min_strength}")
        if not 0 < self.fraction <= 1:
            raise StrategyError(f"pattern_follow: fraction must be within (0, 1], got {self.fraction}")

    def pattern_detectors(self) -> list[Any]:
        if self.detector == "ema_cross":
            return [("ema_cross", {"fast": self.fast, "slow": self.slow})]
        return [("rsi_extremes", {"period": self.rsi_period, "lower": self.lower, "upper": self.upper})]

    def on_signal(self, ctx: Context, signal: Signal) -> None:
        if signal.strength < self.min_strength:
            return
        long = signal.direction == "long"
        pos = ctx.position()
        if (long and pos > 0) or (not long and pos < 0):
            return  # already on that side
        if pos:
            ctx.close_position()
        if long:
            ctx.buy(fraction=self.fraction)
        elif not self.long_only:
            ctx.sell(fraction=self.fraction)

    def on_bar(self, ctx: Context) -> None:
        pass  # everything happens on signals
