"""The detector interface and its declarative, validated parameters.

A detector is a small stateful object for ONE instrument: ``update(bar, index)`` takes the next
bar and returns a :class:`Signal` or None. The engine clones a configured prototype per
instrument (``clone()``), so detectors never share indicator state.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from types import MappingProxyType
from typing import Any, ClassVar

import pandas as pd

from alphaloop.core.market import Bar, Direction, Signal
from alphaloop.patterns.errors import PatternError


class InvalidValue(Exception):
    """Raised by a parameter check; the detector turns it into a PatternError naming the parameter."""


Check = Callable[[Any], Any]


@dataclass(frozen=True)
class Param:
    """One detector parameter: its default, a check that returns the normalised value, a doc."""

    default: Any
    check: Check
    doc: str = ""


def integer(minimum: int = 1) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
            raise InvalidValue(f"must be an integer >= {minimum}")
        return int(value)
    return check


def number(*, gt: float | None = None, ge: float | None = None, lt: float | None = None,
           le: float | None = None) -> Check:
    bounds = [f"> {gt}" if gt is not None else "", f">= {ge}" if ge is not None else "",
              f"< {lt}" if lt is not None else "", f"<= {le}" if le is not None else ""]
    wanted = " and ".join(b for b in bounds if b)

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise InvalidValue(f"must be a finite number{' ' + wanted if wanted else ''}")
        v = float(value)
        if ((gt is not None and not v > gt) or (ge is not None and not v >= ge)
                or (lt is not None and not v < lt) or (le is not None and not v <= le)):
            raise InvalidValue(f"must be {wanted}")
        return v
    return check


def choice(*options: Any) -> Check:
    def check(value: Any) -> Any:
        if value not in options:
            raise InvalidValue(f"must be one of {list(options)}")
        return value
    return check


def duration() -> Check:
    """A time offset: anything ``pd.Timedelta`` reads ("22h", "90min", 0); kept as given."""
    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise InvalidValue("must be a time offset such as '22h'")
        try:
            td = pd.Timedelta(value)
        except (TypeError, ValueError):
            raise InvalidValue("must be a time offset such as '22h'") from None
        if td is pd.NaT:
            raise InvalidValue("must be a time offset such as '22h'")
        return value
    return check


class Detector(ABC):
    """Base of every pattern detector. Subclasses set ``name`` and ``params`` and implement
    ``reset`` (build fresh indicator state from ``self.config``) and ``update``."""

    name: ClassVar[str] = ""
    params: ClassVar[Mapping[str, Param]] = {}

    def __init__(self, **params: Any):
        cls = type(self)
        unknown = sorted(set(params) - set(cls.params))
        if unknown:
            raise PatternError(f"detector '{cls.name}': unknown parameter(s) {unknown}; "
                               f"known parameters: {sorted(cls.params)}")
        values: dict[str, Any] = {}
        for key, spec in cls.params.items():
            raw = params.get(key, spec.default)
            try:
                values[key] = spec.check(raw)
            except InvalidValue as exc:
                raise self.invalid(key, f"{exc}, got {raw!r}") from None
        self.config: Mapping[str, Any] = MappingProxyType(values)
        self.validate()
        self.reset()

    def invalid(self, key: str, message: str) -> PatternError:
        """The error for a bad parameter value (for ``validate`` in subclasses)."""
        return PatternError(f"detector '{type(self).name}': parameter '{key}' {message}")

    def validate(self) -> None:
        """Cross-parameter checks; raise ``self.invalid(...)``."""

    def clone(self) -> Detector:
        """A fresh detector with the same parameters and no state."""
        return type(self)(**self.config)

    @abstractmethod
    def reset(self) -> None:
        """Drop all state (called by ``__init__``)."""

    @abstractmethod
    def update(self, bar: Bar, index: int) -> Signal | None:
        """Take the next bar (``index`` = its 0-based position in this instrument's stream)."""

    def signal(self, bar: Bar, index: int, direction: Direction, strength: float,
               features: dict[str, float]) -> Signal:
        strength = 0.0 if strength != strength else min(1.0, max(0.0, strength))
        return Signal(instrument=bar.instrument, time=bar.time, pattern=type(self).name,
                      direction=direction, strength=strength, features=features, bar=index)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"
