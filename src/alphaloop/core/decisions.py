"""A decision of the strategy engine, with everything needed to answer "why did it trade?"."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Factor:
    """One input to a decision. ``value`` in [-1, 1] (sign = direction); ``weight`` is the configured
    weight, ``effective_weight`` what it counted for after missing factors' weights were redistributed
    (0 when ``missing``). ``detail`` keeps the raw inputs (an RSI of 71.2, a prediction of +0.8%...)."""

    name: str
    value: float
    weight: float
    effective_weight: float
    missing: bool = False
    reason: str | None = None  # why it is missing (timeout, error, no data, NaN)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """``action`` is "buy", "sell" or "hold"; a hold says why in ``reason`` (below threshold, risk rule,
    already positioned...). ``order_id`` links to the order it led to, if any."""

    id: str
    strategy: str
    instrument: str
    time_ns: int
    bar: int
    score: float
    threshold: float
    action: str
    reason: str
    factors: tuple[Factor, ...]
    signal: dict[str, Any] | None = None  # the pattern signal that triggered it
    model: str | None = None
    model_version: int | None = None
    inference_path: str | None = None
    sentiment_source: str | None = None
    target_position: float | None = None
    order_size: float | None = None
    risk_rule: str | None = None
    order_id: str | None = None
    latency_us: float | None = None

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return v

        d = {k: clean(getattr(self, k)) for k in self.__slots__ if k != "factors"}  # type: ignore[attr-defined]
        d["factors"] = [{k: clean(getattr(f, k)) for k in f.__slots__} for f in self.factors]  # type: ignore[attr-defined]
        return d
