"""Indicators for bars that arrive one at a time, equal to the backtester's precomputed values.

The backtester computes ``ctx.indicator(fn, ...)`` once over all bars and hands the values out bar
by bar. Live, there is no "all bars": when ``fn`` is one of :mod:`alphaloop.indicators`' vectorised
functions, its streaming twin takes each bar in O(1) and gives the same double the vectorised form
has at that bar (the indicator suite proves it bit for bit). WMA is the exception: its streaming
form keeps running sums (~1e-15 off between refreshes), so live WMA sums each window afresh in the
vectorised kernel's order instead (O(period) per bar, exact). Any other ``fn`` is recomputed over
the whole history each bar and its last value kept: O(n) per bar, exact for a function that does
not look ahead.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

import alphaloop.indicators as ind
from alphaloop.core.errors import StrategyError
from alphaloop.indicators.errors import IndicatorError
from alphaloop.strategy.context_base import FIELDS

INPUTS = (*FIELDS, "time")  # names an indicator input may use (time: ns since the epoch)


class ExactWMA:
    """WMA that sums each window afresh, left to right, in the order of the vectorised kernel
    (``x0*1 + x1*2 + ... + x[n-1]*n``, then ``/ divider``): bit for bit :func:`alphaloop.indicators.wma`."""

    __slots__ = ("_buf", "_divider", "n", "value")

    def __init__(self, n: int = 30):
        self.n = ind.WMA(n).n  # the same period check as the other forms
        self._divider = (self.n * (self.n + 1)) >> 1
        self._buf: deque[float] = deque(maxlen=self.n)
        self.value = math.nan

    def update(self, x: float) -> float:
        buf = self._buf
        if x - x != 0.0:  # NaN or inf: skipped as a leading warm-up, refused later (as wma does)
            if buf:
                raise IndicatorError(f"WMA: non-finite value {x} after the first valid one")
            return math.nan
        buf.append(x)
        if len(buf) < self.n:
            return math.nan
        total = buf[0] * 1.0
        for j in range(1, self.n):
            total = total + buf[j] * float(j + 1)
        self.value = v = total / self._divider
        return v


# vectorised function -> (streaming class, the vectorised function's series parameters, in the
# order the streaming update takes them; "times" is the bar time, whether or not it was passed)
_TIMED = ("times", "high", "low", "close", "volume")
_TWINS: dict[Callable[..., Any], tuple[Callable[..., Any], tuple[str, ...]]] = {
    ind.sma: (ind.SMA, ("close",)),
    ind.ema: (ind.EMA, ("close",)),
    ind.wma: (ExactWMA, ("close",)),
    ind.rsi: (ind.RSI, ("close",)),
    ind.macd: (ind.MACD, ("close",)),
    ind.stoch: (ind.Stoch, ("high", "low", "close")),
    ind.adx: (ind.ADX, ("high", "low", "close")),
    ind.true_range: (ind.TrueRange, ("high", "low", "close")),
    ind.atr: (ind.ATR, ("high", "low", "close")),
    ind.bbands: (ind.BBands, ("close",)),
    ind.volatility: (ind.Volatility, ("close",)),
    ind.zscore: (ind.ZScore, ("close",)),
    ind.obv: (ind.OBV, ("close", "volume")),
    ind.vwap: (ind.VWAP, _TIMED),
    ind.vwap_std: (ind.VWAP, _TIMED),  # the std is kept beside the VWAP value
    ind.vwap_bands: (ind.VWAPBands, _TIMED),
}
_N_OUTPUTS = {ind.macd: 3, ind.stoch: 2, ind.bbands: 3, ind.vwap_bands: 3}
STREAMING_TWINS: tuple[Callable[..., Any], ...] = tuple(_TWINS)


class LiveIndicator(ABC):
    """One declared indicator: its output histories and how to extend them by one bar."""

    __slots__ = ("histories", "label", "streaming")

    def __init__(self, label: str, n_outputs: int, streaming: bool):
        self.label = label
        self.histories: list[list[float]] = [[] for _ in range(n_outputs)]
        self.streaming = streaming

    @abstractmethod
    def update(self, bar: dict[str, Any], history: Callable[[str], np.ndarray]) -> None:
        """Extend every history by the value at this bar (``bar`` holds the new bar's inputs,
        ``history(name)`` the full input series up to and including it)."""

    @abstractmethod
    def catch_up(self, bars: Iterable[dict[str, Any]], history: Callable[[str], np.ndarray]) -> None:
        """Fill the histories for bars seen before the indicator was declared."""

    def _append(self, values: Sequence[float]) -> None:
        for hist, v in zip(self.histories, values):
            hist.append(float(v))


class _Streaming(LiveIndicator):
    __slots__ = ("_inputs", "_obj", "_read")

    def __init__(self, label: str, obj: Any, inputs: tuple[str, ...], read: Callable[[Any, Any], Sequence[float]],
                 n_outputs: int):
        super().__init__(label, n_outputs, True)
        self._obj, self._inputs, self._read = obj, inputs, read

    def update(self, bar: dict[str, Any], history: Callable[[str], np.ndarray]) -> None:
        out = self._obj.update(*[bar[name] for name in self._inputs])
        self._append(self._read(self._obj, out))

    def catch_up(self, bars: Iterable[dict[str, Any]], history: Callable[[str], np.ndarray]) -> None:
        for bar in bars:
            self.update(bar, history)


class _Recomputed(LiveIndicator):
    """``fn`` over the whole history every bar (O(n) per bar), keeping the last value."""

    __slots__ = ("_fn", "_inputs", "_kwargs")

    def __init__(self, label: str, fn: Callable[..., Any], inputs: tuple[Any, ...], kwargs: dict[str, Any]):
        super().__init__(label, 0, False)
        self._fn, self._inputs, self._kwargs = fn, inputs, kwargs

    def _compute(self, history: Callable[[str], np.ndarray]) -> list[np.ndarray]:
        args = [history(a) if isinstance(a, str) and a in INPUTS else a for a in self._inputs]
        n = len(history("close"))
        out = self._fn(*args, **self._kwargs)
        outs = [np.asarray(o, dtype=float) for o in (out if isinstance(out, tuple) else (out,))]
        for o in outs:
            if o.shape != (n,):
                raise StrategyError(f"indicator {self.label} returned shape {o.shape}, expected ({n},)")
        if not self.histories:
            self.histories = [[] for _ in outs]
        elif len(outs) != len(self.histories):
            raise StrategyError(f"indicator {self.label} returned {len(outs)} outputs, then {len(self.histories)}")
        return outs

    def update(self, bar: dict[str, Any], history: Callable[[str], np.ndarray]) -> None:
        self._append([o[-1] for o in self._compute(history)])

    def catch_up(self, bars: Iterable[dict[str, Any]], history: Callable[[str], np.ndarray]) -> None:
        """Declared before any bar, ``fn`` runs on empty series to learn how many outputs it has
        (one is assumed if it cannot)."""
        try:
            outs = self._compute(history)
        except Exception:
            if len(history("close")):
                raise
            self.histories = [[]]
            return
        for hist, o in zip(self.histories, outs):
            hist.extend(o.tolist())


def _reader(fn: Callable[..., Any]) -> Callable[[Any, Any], Sequence[float]]:
    if fn is ind.vwap_std:
        return lambda obj, _out: (obj.std,)
    return lambda _obj, out: out if isinstance(out, tuple) else (out,)


def make_indicator(fn: Callable[..., Any], inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> LiveIndicator:
    """The streaming twin of ``fn`` when it has one and its series inputs name bar fields; else the
    O(n) recomputation. Raises StrategyError for arguments ``fn`` does not take."""
    label = getattr(fn, "__name__", repr(fn))
    twin = _TWINS.get(fn)
    if twin is None:
        return _Recomputed(label, fn, inputs, kwargs)
    cls, series = twin
    try:
        bound = inspect.signature(fn).bind(*inputs, **kwargs)
    except TypeError as e:
        raise StrategyError(f"indicator {label}{inputs}: {e}") from None
    bound.apply_defaults()
    args = bound.arguments
    names: list[str] = []
    for p in series:
        value = args[p]
        if p == "times" and (value is None or (isinstance(value, str) and value == "time")):
            names.append("time")  # the streaming form always takes the bar time
        elif isinstance(value, str) and value in INPUTS:
            names.append(value)
        else:  # an input that is not a bar field (an array, another indicator): recompute
            return _Recomputed(label, fn, inputs, kwargs)
    params = {k: v for k, v in args.items() if k not in series}
    try:
        obj = cls(**params)
    except IndicatorError as e:
        raise StrategyError(f"indicator {label}{inputs}: {e}") from None
    return _Streaming(label, obj, tuple(names), _reader(fn), _N_OUTPUTS.get(fn, 1))
