"""The pattern engine: bars in, signals out, state kept per instrument.

``on_bar`` is the streaming entry point (the live pipeline runs it behind a message bus, the
backtester inline); ``run`` feeds a whole OHLCV DataFrame through the same per-bar path, so it
yields exactly the signals ``on_bar`` would. Bars are validated once, before any detector
sees them: a bad bar changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.core.market import OHLCV, Bar, Signal
from alphaloop.patterns.base import Detector
from alphaloop.patterns.detectors import BUILTIN_DETECTORS
from alphaloop.patterns.errors import BarOrderError, PatternError
from alphaloop.patterns.registry import create_detector

DetectorSpec = Detector | str | tuple[str, Mapping[str, Any]]


def _build(spec: DetectorSpec) -> Detector:
    if isinstance(spec, Detector):
        return spec.clone()
    if isinstance(spec, str):
        return create_detector(spec)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        return create_detector(spec[0], **spec[1])
    raise PatternError(f"a detector spec is a Detector, a name, or (name, params); got {spec!r}")


class _InstrumentState:
    __slots__ = ("count", "detectors", "last_ns")

    def __init__(self, detectors: list[Detector]):
        self.detectors = detectors
        self.last_ns: int | None = None
        self.count = 0


def _time_ns(t: Any) -> int:
    if type(t) is not pd.Timestamp:
        try:
            t = pd.Timestamp(t)
        except (TypeError, ValueError) as exc:
            raise PatternError(f"bar time must be a timestamp, got {t!r}") from exc
        if t is pd.NaT:
            raise PatternError("bar time must be a timestamp, got NaT")
    return t.value  # UTC nanoseconds (a naive time is taken as UTC)


class PatternEngine:
    """Runs a set of detectors over bars of one or many instruments.

    ``detectors``: Detector instances (used as prototypes and cloned per instrument), registered
    names, or ``(name, params)`` pairs; by default every built-in detector with its defaults.
    """

    def __init__(self, detectors: Iterable[DetectorSpec] | None = None):
        if detectors is None:
            protos = [cls() for cls in BUILTIN_DETECTORS]
        else:
            if isinstance(detectors, (str, Detector)):
                detectors = [detectors]
            protos = [_build(spec) for spec in detectors]
        self._prototypes = tuple(protos)
        self._states: dict[str, _InstrumentState] = {}

    @property
    def detectors(self) -> tuple[Detector, ...]:
        return self._prototypes

    @property
    def instruments(self) -> list[str]:
        return list(self._states)

    def reset(self, instrument: str | None = None) -> None:
        """Forget the state of one instrument, or of all."""
        if instrument is None:
            self._states.clear()
        else:
            self._states.pop(instrument, None)

    def _state(self, instrument: str) -> _InstrumentState:
        state = self._states.get(instrument)
        if state is None:
            state = _InstrumentState([p.clone() for p in self._prototypes])
            self._states[instrument] = state
        return state

    @staticmethod
    def _feed(state: _InstrumentState, bar: Bar, t: int) -> list[Signal]:
        state.last_ns = t
        index = state.count
        state.count = index + 1
        out = []
        for detector in state.detectors:
            signal = detector.update(bar, index)
            if signal is not None:
                out.append(signal)
        return out

    def on_bar(self, bar: Bar) -> list[Signal]:
        """Feed one bar (bars of each instrument in time order); returns the signals it triggers."""
        t = _time_ns(bar.time)
        state = self._states.get(bar.instrument)
        if state is not None and state.last_ns is not None and t <= state.last_ns:
            raise BarOrderError(
                f"{bar.instrument}: bar at {bar.time} is not after the last bar "
                f"({pd.Timestamp(state.last_ns, tz='UTC')}); bars must arrive in time order")
        for field in OHLCV:
            value = getattr(bar, field)
            try:
                finite = not isinstance(value, (str, bytes)) and math.isfinite(value)
            except TypeError:
                finite = False
            if not finite:
                raise PatternError(f"{bar.instrument}: bar at {bar.time} has {field}={value!r}; "
                                   "expected a finite number")
        if bar.volume < 0:
            raise PatternError(f"{bar.instrument}: bar at {bar.time} has negative volume {bar.volume}")
        return self._feed(state or self._state(bar.instrument), bar, t)

    def run(self, df: pd.DataFrame, instrument: str) -> list[Signal]:
        """Feed every row of an OHLCV DataFrame (columns open, high, low, close, volume; UTC
        DatetimeIndex, increasing) for ``instrument``; same signals as ``on_bar`` row by row.
        Validated up front: a bad frame raises before any state changes."""
        index = self._check_frame(df, instrument)
        state = self._states.get(instrument)
        if state is not None and state.last_ns is not None and len(index) and index[0].value <= state.last_ns:
            raise BarOrderError(f"{instrument}: first row at {index[0]} is not after the last bar "
                                f"({pd.Timestamp(state.last_ns, tz='UTC')})")
        state = state or self._state(instrument)
        columns = [df[c].to_numpy(dtype=np.float64).tolist() for c in OHLCV]
        out: list[Signal] = []
        feed = self._feed
        for t, o, h, lo, c, v in zip(index, *columns):
            out.extend(feed(state, Bar(instrument, t, o, h, lo, c, v), t.value))
        return out

    @staticmethod
    def _check_frame(df: pd.DataFrame, instrument: str) -> pd.DatetimeIndex:
        if not isinstance(df, pd.DataFrame):
            raise PatternError(f"run expects a DataFrame, got {type(df).__name__}")
        missing = [c for c in OHLCV if c not in df.columns]
        if missing:
            raise PatternError(f"{instrument}: DataFrame is missing column(s) {missing}; "
                               f"expected {list(OHLCV)}")
        if not isinstance(df.index, pd.DatetimeIndex):
            raise PatternError(f"{instrument}: DataFrame index must be a DatetimeIndex (UTC), "
                               f"got {type(df.index).__name__}")
        index = df.index
        index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
        if index.hasnans:
            raise PatternError(f"{instrument}: index has a missing timestamp at row "
                               f"{int(np.argmax(index.isna()))}")
        ns = index.as_unit("ns").asi8
        bad = np.flatnonzero(np.diff(ns) <= 0)
        if bad.size:
            row = int(bad[0]) + 1
            raise BarOrderError(f"{instrument}: row {row} ({index[row]}) is not after row {row - 1} "
                                f"({index[row - 1]}); bars must be in time order")
        for c in OHLCV:
            try:
                values = df[c].to_numpy(dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise PatternError(f"{instrument}: column '{c}' is not numeric ({exc})") from exc
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise PatternError(f"{instrument}: column '{c}' has {values[bad[0]]} at row "
                                   f"{int(bad[0])} ({index[bad[0]]}); expected finite numbers")
        volume = df["volume"].to_numpy(dtype=np.float64)
        if (volume < 0).any():
            row = int(np.argmax(volume < 0))
            raise PatternError(f"{instrument}: column 'volume' is negative ({volume[row]}) at row {row}")
        return index
