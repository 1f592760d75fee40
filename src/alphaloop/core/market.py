"""Market data and signal types."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pandas as pd

OHLCV = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar. ``time`` is the bar's open time, UTC."""

    instrument: str
    time: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade or quote. ``bid``/``ask`` are optional for trade prints."""

    instrument: str
    time: pd.Timestamp
    price: float
    size: float = 0.0
    bid: float | None = None
    ask: float | None = None


class Direction(StrEnum):
    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        return 1 if self is Direction.LONG else -1


@dataclass(frozen=True, slots=True)
class Signal:
    """A pattern detector's opinion at one bar: which way, how strongly (0..1), and why (features)."""

    instrument: str
    time: pd.Timestamp
    pattern: str
    direction: Direction
    strength: float
    features: dict[str, float] = field(default_factory=dict)
    bar: int | None = None
