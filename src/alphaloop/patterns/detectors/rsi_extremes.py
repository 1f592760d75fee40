"""RSI extremes: the RSI enters the oversold or overbought zone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from alphaloop.core.market import Bar, Direction, Signal
from alphaloop.indicators import RSI
from alphaloop.patterns.base import Detector, Param, choice, integer, number
from alphaloop.patterns.registry import register_detector


@register_detector
class RsiExtremes(Detector):
    """Signals on the bar the RSI moves below ``lower`` or above ``upper`` (once per excursion).

    ``mode="reversal"`` reads oversold as LONG and overbought as SHORT (mean reversion);
    ``mode="momentum"`` the opposite. Strength is the depth into the zone relative to the
    zone's width: ``(lower - rsi) / lower`` or ``(rsi - upper) / (100 - upper)``.
    """

    name = "rsi_extremes"
    params: ClassVar[Mapping[str, Param]] = {
        "period": Param(14, integer(2), "RSI period"),
        "lower": Param(30.0, number(gt=0, lt=100), "oversold level"),
        "upper": Param(70.0, number(gt=0, lt=100), "overbought level, > lower"),
        "mode": Param("reversal", choice("reversal", "momentum"), "how to read an extreme"),
    }

    def validate(self) -> None:
        if self.config["lower"] >= self.config["upper"]:
            raise self.invalid("lower", f"must be < upper ({self.config['upper']}), "
                                        f"got {self.config['lower']}")

    def reset(self) -> None:
        c = self.config
        self._rsi = RSI(c["period"])
        self._lower, self._upper = c["lower"], c["upper"]
        self._sign = 1 if c["mode"] == "reversal" else -1
        self._zone = 0

    def update(self, bar: Bar, index: int) -> Signal | None:
        rsi = self._rsi.update(bar.close)
        if rsi != rsi:
            return None
        lower, upper = self._lower, self._upper
        zone = -1 if rsi < lower else (1 if rsi > upper else 0)
        entered = zone != 0 and zone != self._zone
        self._zone = zone
        if not entered:
            return None
        if zone < 0:
            strength = (lower - rsi) / lower
        else:
            strength = (rsi - upper) / (100.0 - upper)
        # reversal: oversold (zone -1) -> LONG; momentum flips it.
        direction = Direction.LONG if -zone * self._sign > 0 else Direction.SHORT
        return self.signal(bar, index, direction, strength,
                           {"rsi": rsi, "lower": lower, "upper": upper})
