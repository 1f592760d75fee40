"""EMA crossover: the fast EMA crosses the slow one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from alphaloop.core.market import Bar, Direction, Signal
from alphaloop.indicators import ATR, EMA
from alphaloop.patterns.base import Detector, Param, integer, number
from alphaloop.patterns.registry import register_detector


@register_detector
class EmaCross(Detector):
    """LONG when the fast EMA closes above the slow EMA after being below it, SHORT the other way.

    Strength is the gap between the EMAs measured in ATRs, ``|fast - slow| / ATR / full_atr``
    capped at 1: a cross that opens a wide gap at once is more decisive than a touch. A cross
    is the sign change of ``fast - slow`` from its last non-zero sign (a touch is not a cross).
    """

    name = "ema_cross"
    params: ClassVar[Mapping[str, Param]] = {
        "fast": Param(12, integer(1), "fast EMA period"),
        "slow": Param(26, integer(2), "slow EMA period, > fast"),
        "atr_period": Param(14, integer(1), "ATR period that scales the gap"),
        "full_atr": Param(0.5, number(gt=0), "gap in ATRs that gives strength 1"),
    }

    def validate(self) -> None:
        if self.config["fast"] >= self.config["slow"]:
            raise self.invalid("fast", f"must be < slow ({self.config['slow']}), got {self.config['fast']}")

    def reset(self) -> None:
        c = self.config
        self._fast, self._slow, self._atr = EMA(c["fast"]), EMA(c["slow"]), ATR(c["atr_period"])
        self._full = c["full_atr"]
        self._sign = 0

    def update(self, bar: Bar, index: int) -> Signal | None:
        fast = self._fast.update(bar.close)
        slow = self._slow.update(bar.close)
        atr = self._atr.update(bar.high, bar.low, bar.close)
        if slow != slow or atr != atr:  # warm-up
            return None
        gap = fast - slow
        sign = (gap > 0) - (gap < 0)
        if sign == 0:
            return None
        last, self._sign = self._sign, sign
        if last == 0 or last == sign:
            return None
        features = {"ema_fast": fast, "ema_slow": slow, "gap": gap, "atr": atr}
        if atr > 0:
            features["gap_atr"] = abs(gap) / atr
            strength = abs(gap) / atr / self._full
        else:
            strength = 1.0
        return self.signal(bar, index, Direction.LONG if sign > 0 else Direction.SHORT, strength,
                           features)
