"""The one Strategy interface that runs unchanged in the backtester and live.

A strategy never sees a bar before its time: the history lists it reads (``ctx.close``,
``ctx.indicator(...)``) only ever hold values up to the current bar, ``[-1]`` being the current one,
and orders it sends fill on later bars (or this bar's close, if so configured).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from alphaloop.core.decisions import Decision
from alphaloop.core.errors import StrategyError
from alphaloop.core.market import Signal
from alphaloop.core.orders import Fill, Order, Position
from alphaloop.strategy.services import Services

History = list  # a growing list of floats; index -1 is the current bar


class Context(Protocol):
    """What a strategy may see and do. Implemented by the backtester and the live runner."""

    @property
    def i(self) -> int: ...  # 0-based index of the current bar of the primary instrument

    @property
    def time(self) -> pd.Timestamp: ...

    @property
    def time_ns(self) -> int: ...  # the same, as ns since the epoch (cheap: no Timestamp object)

    @property
    def instrument(self) -> str: ...  # the primary (first) instrument

    @property
    def instruments(self) -> list[str]: ...

    @property
    def open(self) -> History: ...

    @property
    def high(self) -> History: ...

    @property
    def low(self) -> History: ...

    @property
    def close(self) -> History: ...

    @property
    def volume(self) -> History: ...

    def history(self, field: str, instrument: str | None = None) -> History: ...

    def indicator(self, fn: Callable[..., Any], *inputs: Any, instrument: str | None = None,
                  **kwargs: Any) -> History | tuple[History, ...]: ...

    def buy(self, size: float | None = None, *, fraction: float | None = None, instrument: str | None = None,
            limit: float | None = None, stop: float | None = None, sl: float | None = None,
            tp: float | None = None, tif: str = "gtc", expires_at: pd.Timestamp | None = None,
            tag: str | None = None) -> Order: ...

    def sell(self, size: float | None = None, *, fraction: float | None = None, instrument: str | None = None,
             limit: float | None = None, stop: float | None = None, sl: float | None = None,
             tp: float | None = None, tif: str = "gtc", expires_at: pd.Timestamp | None = None,
             tag: str | None = None) -> Order: ...

    def close_position(self, instrument: str | None = None, tag: str | None = None) -> Order | None: ...

    def cancel(self, order: Order) -> None: ...

    def position(self, instrument: str | None = None) -> float: ...

    def position_info(self, instrument: str | None = None) -> Position: ...

    @property
    def orders(self) -> list[Order]: ...

    @property
    def services(self) -> Services: ...  # the ML predictor and sentiment source, if the runner has them

    def feature_row(self, fn: Callable[[pd.DataFrame], pd.DataFrame], instrument: str | None = None) -> np.ndarray:
        """The current bar's row of ``fn(bars)`` (``fn`` maps an OHLCV frame to a frame of features,
        using only past bars for each row; checked for look-ahead like ``indicator``)."""
        ...

    def record_decision(self, decision: Decision) -> None:
        """Keep a decision (backtest: in the result; live: stored and published)."""
        ...

    @property
    def cash(self) -> float: ...

    @property
    def equity(self) -> float: ...


def _coerce(strategy: str, name: str, value: Any, default: Any) -> Any:
    """Convert a parameter (often a CLI string) to the type of its default, or say why not."""
    kind = type(default)
    try:
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
        if kind is bool:
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            f = float(value)
            if not f.is_integer():
                raise ValueError
            return int(f)
        if kind is float:
            return float(value)
        if default is None or kind is str:
            return value
        return kind(value)
    except (TypeError, ValueError):
        raise StrategyError(f"strategy '{strategy}': parameter '{name}' expects {kind.__name__}, "
                            f"got {value!r}") from None


class Strategy(ABC):
    """Subclass, set ``name`` and ``params`` (defaults; their types are enforced), and implement
    ``on_bar``. ``init`` runs once before the first bar; ``on_fill`` after each fill of this strategy.
    Parameters are available as attributes (``self.fast``).

    A strategy that trades on pattern signals lists its detectors in ``pattern_detectors()``; the
    runner (backtest inline, live behind the bus) runs one pattern engine for them and calls
    ``on_signal`` for each signal of the current bar, before ``on_bar``.
    """

    name: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any):
        label = self.name or type(self).__name__
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise StrategyError(f"strategy '{label}': unknown parameter(s) {', '.join(unknown)}; known: {known}")
        values = {k: _coerce(label, k, params.get(k, d), d) if k in params else d for k, d in self.params.items()}
        self.parameters = values
        for k, v in values.items():
            setattr(self, k, v)
        self.validate()

    def validate(self) -> None:
        """Raise StrategyError for inconsistent parameters (override)."""

    def init(self, ctx: Context) -> None:
        """Declare indicators and state; called once before the first bar."""

    @abstractmethod
    def on_bar(self, ctx: Context) -> None:
        """Called once per bar, after that bar's fills; send orders through ``ctx``."""

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        """Called after each fill of this strategy's orders."""

    def pattern_detectors(self) -> list[Any]:
        """Detector specs (names, (name, params) pairs or Detector objects) this strategy listens to."""
        return []

    def on_signal(self, ctx: Context, signal: Signal) -> None:
        """Called for each pattern signal of the current bar, before ``on_bar``."""
