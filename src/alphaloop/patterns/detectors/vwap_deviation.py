"""VWAP deviation: the close moves more than k standard deviations away from the session VWAP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from alphaloop.core.market import Bar, Direction, Signal
from alphaloop.indicators import VWAP
from alphaloop.patterns.base import Detector, Param, choice, duration, integer, number
from alphaloop.patterns.registry import register_detector


@register_detector
class VwapDeviation(Detector):
    """Signals on the bar the close leaves the band VWAP +/- k * sigma (once per excursion), where
    sigma is the session's volume-weighted standard deviation of the typical price.

    ``mode="mean_reversion"`` expects a return to VWAP (above the band -> SHORT);
    ``mode="breakout"`` follows the move (above the band -> LONG). Strength is ``1 - k / |z|``
    with ``z = (close - vwap) / sigma``: 0 at the band, towards 1 far beyond it. The first
    ``min_bars`` bars of each session are ignored while sigma is still meaningless.
    ``anchor`` is "D", "W", "M" or "none" (cumulative), ``offset`` shifts the session start
    (e.g. "22h" for FX).
    """

    name = "vwap_deviation"
    params: ClassVar[Mapping[str, Param]] = {
        "k": Param(2.0, number(gt=0), "band width in standard deviations"),
        "anchor": Param("D", choice("D", "W", "M", "none"), "session: day, week, month or none"),
        "offset": Param("0h", duration(), "session start after UTC midnight"),
        "mode": Param("mean_reversion", choice("mean_reversion", "breakout"), "how to read it"),
        "min_bars": Param(5, integer(1), "bars into a session before signalling"),
    }

    def reset(self) -> None:
        c = self.config
        self._vwap = VWAP(None if c["anchor"] == "none" else c["anchor"], c["offset"])
        self._k, self._min_bars = c["k"], c["min_bars"]
        self._sign = -1 if c["mode"] == "mean_reversion" else 1
        self._side = 0

    def update(self, bar: Bar, index: int) -> Signal | None:
        vw = self._vwap
        value = vw.update(bar.time, bar.high, bar.low, bar.close, bar.volume)
        std = vw.std
        if value != value or vw.session_bars < self._min_bars or not std > 0.0:
            self._side = 0
            return None
        z = (bar.close - value) / std
        k = self._k
        side = 1 if z > k else (-1 if z < -k else 0)
        entered = side != 0 and side != self._side
        self._side = side
        if not entered:
            return None
        direction = Direction.LONG if side * self._sign > 0 else Direction.SHORT
        return self.signal(bar, index, direction, 1.0 - k / abs(z),
                           {"close": bar.close, "vwap": value, "std": std, "z": z})
