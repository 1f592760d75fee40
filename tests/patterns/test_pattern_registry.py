"""The detector registry: built-ins by name, user detectors registered by class, clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest
from pattern_helpers import load_market

import alphaloop.patterns.registry as registry
from alphaloop.core.market import Bar, Direction, Signal
from alphaloop.patterns import (
    Detector,
    Param,
    PatternEngine,
    PatternError,
    UnknownDetectorError,
    create_detector,
    detector_names,
    get_detector,
    integer,
    number,
    register_detector,
)


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """User detectors registered by a test do not leak into the others."""
    monkeypatch.setattr(registry, "_DETECTORS", dict(registry._DETECTORS))


class GapUp(Detector):
    """A user detector: the open gaps above the previous high by more than ``min_gap``."""

    name = "gap_up"
    params: ClassVar[Mapping[str, Param]] = {
        "min_gap": Param(0.01, number(gt=0), "gap as a fraction of the previous high"),
        "cooldown": Param(1, integer(0), "bars to wait after a signal"),
    }

    def reset(self) -> None:
        self._prev_high = None
        self._wait = 0

    def update(self, bar: Bar, index: int) -> Signal | None:
        prev, self._prev_high = self._prev_high, bar.high
        if self._wait:
            self._wait -= 1
            return None
        if prev is None:
            return None
        gap = bar.open / prev - 1.0
        if gap <= self.config["min_gap"]:
            return None
        self._wait = self.config["cooldown"]
        return self.signal(bar, index, Direction.LONG, gap / (4 * self.config["min_gap"]), {"gap": gap})


def test_builtins_are_registered() -> None:
    assert detector_names() == ["ema_cross", "rsi_extremes", "volatility_breakout", "vwap_deviation"]
    assert get_detector("ema_cross").name == "ema_cross"
    assert create_detector("rsi_extremes", period=21).config["period"] == 21


def test_a_user_detector_registers_and_runs_by_name() -> None:
    assert register_detector(GapUp) is GapUp
    assert "gap_up" in detector_names()
    register_detector(GapUp)  # registering the same class again is harmless
    df = load_market("GOOG_daily.csv")
    signals = PatternEngine([("gap_up", {"min_gap": 0.02}), "rsi_extremes"]).run(df, "GOOG")
    gaps = [s for s in signals if s.pattern == "gap_up"]
    assert gaps and all(s.features["gap"] > 0.02 and 0 < s.strength <= 1 for s in gaps)
    prev_high = df["high"].shift()
    for s in gaps:
        assert df["open"].iloc[s.bar] / prev_high.iloc[s.bar] - 1 == s.features["gap"]


def test_unknown_names_list_the_known_detectors() -> None:
    register_detector(GapUp)
    with pytest.raises(UnknownDetectorError, match="unknown detector 'gap_dn'; known detectors: "
                                                   "ema_cross, gap_up, rsi_extremes, "
                                                   "volatility_breakout, vwap_deviation"):
        get_detector("gap_dn")
    with pytest.raises(PatternError):
        create_detector(None)


def test_user_detector_parameters_are_checked() -> None:
    register_detector(GapUp)
    with pytest.raises(PatternError, match=r"detector 'gap_up': unknown parameter\(s\) \['gap'\]; "
                                           r"known parameters: \['cooldown', 'min_gap'\]"):
        create_detector("gap_up", gap=0.1)
    with pytest.raises(PatternError, match="detector 'gap_up': parameter 'cooldown' must be an "
                                           "integer >= 0, got -1"):
        create_detector("gap_up", cooldown=-1)


def test_bad_registrations_are_refused() -> None:
    with pytest.raises(PatternError, match="expects a Detector subclass"):
        register_detector(dict)
    with pytest.raises(PatternError, match="expects a Detector subclass"):
        register_detector(GapUp())

    class Clash(GapUp):
        name = "ema_cross"

    with pytest.raises(PatternError, match="a detector named 'ema_cross' is already registered"):
        register_detector(Clash)

    class Nameless(GapUp):
        name = "not a name"

    with pytest.raises(PatternError, match="name must be an identifier-like string"):
        register_detector(Nameless)

    class BadParams(GapUp):
        name = "bad_params"
        params: ClassVar[Mapping[str, Param]] = {"x": 3}

    with pytest.raises(PatternError, match=r"params must map parameter names to Param"):
        register_detector(BadParams)
