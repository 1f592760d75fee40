"""Market data for a live run: bar files replayed on one UTC timeline, or an endless synthetic stream.

A source yields *steps*: the bars of one timestamp, in instrument order (several instruments are
merged on the union of their times, exactly as the backtester merges them), each flagged when it is
its instrument's last bar. :meth:`MarketDataReplay.publish` puts a step on the bars stream.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from alphaloop.bus import MessageBus
from alphaloop.core.errors import DataError
from alphaloop.core.market import Bar
from alphaloop.data import generate_bars, load_bars, load_many
from alphaloop.live import messages as m

Step = list[tuple[Bar, bool]]  # (bar, is its instrument's last bar)
FIELDS = ("open", "high", "low", "close", "volume")


class BarSource(Protocol):
    """What the runner replays: instrument names, a pace, and the steps."""

    instruments: list[str]
    speed: float  # timeline steps per second (for one instrument: bars per second); 0 = as fast as possible
    mode: str  # "replay", "synthetic" or "live" (as a recorder stores it)

    def steps(self) -> Iterator[Step]: ...


class MarketDataReplay:
    """Bars from files or frames (finite), or from the synthetic generator (endless)."""

    def __init__(self, frames: Mapping[str, pd.DataFrame], *, speed: float = 0.0):
        if not frames:
            raise DataError("no market data to replay")
        if not speed >= 0:
            raise ValueError(f"speed must be >= 0 bars per second (0: as fast as possible), got {speed}")
        self.frames = dict(frames)
        self.instruments = list(self.frames)
        self.speed = float(speed)
        self.mode = "replay"
        self._synthetic: dict[str, Any] | None = None

    # ---- constructors --------------------------------------------------------------------------
    @classmethod
    def from_sources(cls, sources: Any, *, speed: float = 0.0, tz: str | None = None) -> MarketDataReplay:
        """A path, a DataFrame, a list of them, or a mapping instrument -> path/DataFrame
        (loaded with :func:`alphaloop.data.load_bars`: validated once, here)."""
        if isinstance(sources, pd.DataFrame):
            name = str(sources.attrs.get("instrument", "asset"))
            return cls({name: _checked(name, sources)}, speed=speed)
        if isinstance(sources, str | os.PathLike):
            df = load_bars(sources, tz=tz)
            return cls({df.attrs["instrument"]: df}, speed=speed)
        if isinstance(sources, Mapping):
            frames = {str(k): _checked(str(k), v) if isinstance(v, pd.DataFrame) else load_bars(v, instrument=str(k), tz=tz)
                      for k, v in sources.items()}
            return cls(frames, speed=speed)
        if isinstance(sources, Sequence):
            if all(isinstance(s, pd.DataFrame) for s in sources):
                return cls.from_sources({str(s.attrs.get("instrument", f"asset{k}")): s for k, s in enumerate(sources)},
                                        speed=speed)
            return cls(load_many(list(sources), tz=tz), speed=speed)
        raise DataError(f"cannot replay {type(sources).__name__}: give paths, DataFrames or a mapping of them")

    @classmethod
    def synthetic(cls, *, seed: int, instrument: str = "SYNTH", regime: str = "mixed", freq: str = "1D",
                  start: str | pd.Timestamp = "2020-01-01", start_price: float = 100.0, chunk: int = 1000,
                  speed: float = 0.0) -> MarketDataReplay:
        """An endless stream from :func:`alphaloop.data.generate_bars`, ``chunk`` bars at a time:
        each chunk continues from the last close and time, seeded from (``seed``, chunk number), so
        the same seed gives the same bars."""
        first = generate_bars(1, seed=seed, start=start, freq=freq, start_price=start_price, regime=regime,
                              instrument=instrument)  # validates the arguments now, not mid-run
        replay = cls({instrument: first}, speed=speed)
        replay.mode = "synthetic"
        replay._synthetic = {"seed": seed, "regime": regime, "freq": freq, "start": start,
                             "start_price": start_price, "chunk": max(1, int(chunk))}
        return replay

    # ---- steps ---------------------------------------------------------------------------------
    def steps(self) -> Iterator[Step]:
        if self._synthetic is not None:
            yield from self._synthetic_steps()
            return
        names = self.instruments
        times_ns = [_times_ns(self.frames[n]) for n in names]
        columns = [{f: self.frames[n][f].to_numpy(dtype=float).tolist() for f in FIELDS} for n in names]
        timeline = np.unique(np.concatenate(times_ns))
        positions = [np.searchsorted(timeline, t) for t in times_ns]
        nexts = [0] * len(names)  # next row of each instrument
        lengths = [len(t) for t in times_ns]
        for s in range(len(timeline)):
            step: Step = []
            for k, name in enumerate(names):
                i = nexts[k]
                if i < lengths[k] and positions[k][i] == s:
                    c = columns[k]
                    bar = Bar(name, pd.Timestamp(int(times_ns[k][i]), tz="UTC"), c["open"][i], c["high"][i],
                              c["low"][i], c["close"][i], c["volume"][i])
                    step.append((bar, i == lengths[k] - 1))
                    nexts[k] = i + 1
            yield step

    def _synthetic_steps(self) -> Iterator[Step]:
        spec = self._synthetic
        assert spec is not None
        name = self.instruments[0]
        start, price = pd.Timestamp(spec["start"]), float(spec["start_price"])
        offset = pd.tseries.frequencies.to_offset(spec["freq"])
        for k in itertools.count():
            seed = int(np.random.SeedSequence([int(spec["seed"]), k]).generate_state(1)[0])
            df = generate_bars(spec["chunk"], seed=seed, start=start, freq=spec["freq"], start_price=price,
                               regime=spec["regime"], instrument=name)
            times = _times_ns(df)
            cols = [df[f].to_numpy(dtype=float).tolist() for f in FIELDS]
            for i, t in enumerate(times.tolist()):
                yield [(Bar(name, pd.Timestamp(t, tz="UTC"), *(col[i] for col in cols)), False)]
            start, price = df.index[-1] + offset, cols[3][-1]



def publish_step(bus: MessageBus, stream: str, step: Step, ids: m.IdSource) -> None:
    """Put one step's bars on the bars stream."""
    for bar, last in step:
        bus.publish(stream, m.envelope(m.BAR, ids(), m.bar_payload(bar, last), "market-data"))


def _checked(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """A frame is validated like a file (load_bars): a bad frame fails before the run starts."""
    out = load_bars(df, instrument=name)
    out.attrs["instrument"] = name
    return out


def _times_ns(df: pd.DataFrame) -> np.ndarray:
    index = df.index if df.index.tz is not None else df.index.tz_localize("UTC")
    return index.tz_convert("UTC").as_unit("ns").asi8


def as_source(sources: Any) -> Any:
    """A bar source as given (anything with ``instruments`` and ``steps()``), or a replay of files/frames."""
    if hasattr(sources, "steps") and hasattr(sources, "instruments"):
        return sources
    if isinstance(sources, Path):
        sources = str(sources)
    return MarketDataReplay.from_sources(sources)
