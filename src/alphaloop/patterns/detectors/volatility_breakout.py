"""Volatility breakout: range expansion (ATR or Bollinger width) right after a squeeze."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from alphaloop.core.market import Bar, Direction, Signal
from alphaloop.indicators import ATR, SMA, BBands
from alphaloop.patterns.base import Detector, Param, choice, integer, number
from alphaloop.patterns.registry import register_detector


@register_detector
class VolatilityBreakout(Detector):
    """A squeeze is a bar whose width is at most ``squeeze`` x its ``baseline``-bar average, width
    being the Bollinger bandwidth (upper - lower) / middle (``measure="bbands"``) or ATR / close
    (``measure="atr"``). Within ``memory`` bars after the squeeze, a bar whose width reaches
    ``expansion`` x the squeeze's narrowest width is a breakout; its direction is the breakout
    bar's body (close above open: LONG; below: SHORT; a doji waits for the next bar). One signal
    per squeeze. Strength: 0.5 at the threshold, 1 at twice the expansion,
    ``(ratio - 1) / (2 * (expansion - 1))`` capped at 1.
    """

    name = "volatility_breakout"
    params: ClassVar[Mapping[str, Param]] = {
        "measure": Param("bbands", choice("bbands", "atr"), "width measure"),
        "period": Param(20, integer(2), "Bollinger or ATR period"),
        "nbdev": Param(2.0, number(gt=0), "Bollinger band width in standard deviations"),
        "baseline": Param(50, integer(2), "bars in the average width"),
        "squeeze": Param(0.75, number(gt=0, lt=1), "width / average width at or below which it is a squeeze"),
        "expansion": Param(1.5, number(gt=1), "width / squeeze width that makes a breakout"),
        "memory": Param(20, integer(1), "bars after the squeeze during which a breakout counts"),
    }

    def reset(self) -> None:
        c = self.config
        if c["measure"] == "bbands":
            self._bb, self._atr = BBands(c["period"], c["nbdev"], c["nbdev"]), None
        else:
            self._bb, self._atr = None, ATR(c["period"])
        self._base = SMA(c["baseline"])
        self._squeeze, self._expansion, self._memory = c["squeeze"], c["expansion"], c["memory"]
        self._low = -1.0  # narrowest width of the current squeeze; < 0: no squeeze
        self._since = 0

    def _width(self, bar: Bar) -> float:
        if self._bb is not None:
            upper, middle, lower = self._bb.update(bar.close)
            return (upper - lower) / middle if middle != 0 else float("nan")
        return self._atr.update(bar.high, bar.low, bar.close) / bar.close if bar.close != 0 else float("nan")

    def update(self, bar: Bar, index: int) -> Signal | None:
        width = self._width(bar)
        if width != width:
            return None
        base = self._base.update(width)
        if base != base:
            return None
        if width <= self._squeeze * base:
            self._low = width if self._low < 0 or width < self._low else self._low
            self._since = 0
            return None
        if self._low < 0:
            return None
        self._since += 1
        if self._since > self._memory:
            self._low = -1.0
            return None
        low = self._low
        if low > 0:
            ratio = width / low
            if ratio < self._expansion:
                return None
        else:
            ratio = float("inf")  # expansion out of a perfectly flat squeeze
        if bar.close == bar.open:
            return None
        self._low = -1.0
        features = {"width": width, "baseline": base, "squeeze_width": low, "open": bar.open,
                    "close": bar.close}
        if ratio != float("inf"):
            features["ratio"] = ratio
        strength = (ratio - 1.0) / (2.0 * (self._expansion - 1.0))
        direction = Direction.LONG if bar.close > bar.open else Direction.SHORT
        return self.signal(bar, index, direction, strength, features)
