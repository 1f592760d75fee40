"""The market data service (port 9000): instruments, bars by time range and the latest quote over
HTTP, and the replay of files or the synthetic generator onto the run's bars stream.

Bars go out one timeline step (the bars of one timestamp) at a time, at ``speed`` steps per second
(0: as fast as possible), with ids ``RUN:market-data:N`` and, in the payload, the step number and
how many bars it has (so the pattern engine knows when a step is complete). After the last step
(end of the files, or ``--bars``) an ``end`` message follows. A publish that fails (Redis away) is
retried with the same ids until it goes through; consumers drop the duplicates a retry may leave.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from alphaloop.core.market import Bar
from alphaloop.live import messages as m
from alphaloop.services import metrics
from alphaloop.services.http_app import bearer_auth, make_app
from alphaloop.services.pipeline_protocol import END, BusHolder, RunOptions, envelope
from alphaloop.services.serving import LoopWorker

log = logging.getLogger(__name__)
SERVICE = "market-data"
HISTORY = 100_000  # published bars kept per instrument for /bars of a synthetic stream
MAX_LIMIT = 100_000
STEPS_PER_PUBLISH = 100  # steps sent in one round trip when they are due at once (as fast as possible, or late)


class ReplayControl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speed: float | None = Field(None, ge=0, le=1_000_000, description="steps per second; 0 = as fast as possible")
    paused: bool | None = Field(None, description="stop publishing (true) or go on (false)")


class Replay:
    """Publishes the source's steps onto the bars stream, paced, resumable after a bus failure."""

    def __init__(self, options: RunOptions, bus: BusHolder):
        self.options, self.bus = options, bus
        self.source = options.source()
        self.stream = options.streams.bars
        self._steps = self.source.steps()
        self._ids = m.IdSource(options.run_id, SERVICE)
        self._outbox: list[list[Any]] = []  # the envelopes of the steps due, until published
        self.lock = threading.Lock()
        self.speed = options.speed
        self.paused = options.paused
        self.published = 0  # steps
        self.bars_published = 0
        self.finished = False
        self.last: dict[str, Bar] = {}
        self.history: dict[str, collections.deque[Bar]] = collections.defaultdict(
            lambda: collections.deque(maxlen=HISTORY))
        self._anchor = (time.monotonic(), 0)  # (when, steps published then): pacing restarts at speed changes
        self.started_at = time.time()
        self._resumed = False

    def control(self, speed: float | None, paused: bool | None) -> None:
        with self.lock:
            if speed is not None:
                self.speed = float(speed)
            if paused is not None:
                self.paused = bool(paused)
            self._anchor = (time.monotonic(), self.published)

    def _resume(self) -> None:
        """A restarted replay goes on where the stream ends: steps fully on it are skipped (their
        ids counted), the last one is published again (its bars may be only partly there)."""
        last = self.bus.get().last_entry(self.stream)
        self._resumed = True
        if last is None:
            return
        if last.kind == END:
            self.published, self.finished = int(last.payload.get("steps", 0)), True
            return
        upto = last.payload.get("step") if last.kind == m.BAR else None
        if not isinstance(upto, int):
            return
        for _ in range(upto):
            step = next(self._steps, None)
            if step is None:
                break
            for bar, _ in step:
                self._ids()
                self.last[bar.instrument] = bar
            self.published += 1
        self._anchor = (time.monotonic(), self.published)
        log.info("replay of run %s resumes at step %d", self.options.run_id, self.published)

    def step(self) -> int:
        """Publish the steps that are due (at most ``STEPS_PER_PUBLISH``, in one round trip);
        returns how many went out."""
        if not self._resumed:
            self._resume()
        if self.finished or self.paused:
            return 0
        if not self._outbox:
            with self.lock:
                speed, (t0, n0) = self.speed, self._anchor
            due = STEPS_PER_PUBLISH
            if speed > 0:
                now = time.monotonic()
                wait = t0 + (self.published - n0) / speed - now
                if wait > 0:
                    time.sleep(min(wait, 0.05))
                    return 0
                due = min(due, int((now - t0) * speed) + n0 - self.published + 1)  # late: catch up at once
            for k in range(max(due, 1)):
                envs = self._next_envelopes(self.published + k)
                self._outbox.append(envs)
                if envs and envs[-1].kind == END:
                    break
        # raises while Redis is away: retried, with the same ids
        self.bus.get().publish_many([(self.stream, env) for envs in self._outbox for env in envs])
        sent, self._outbox = self._outbox, []
        steps = 0
        for envs in sent:
            for env in envs:
                if env.kind == m.BAR:
                    bar, _ = m.bar_from_payload(env.payload)
                    self.last[bar.instrument] = bar
                    if self.options.synthetic:
                        self.history[bar.instrument].append(bar)
                    self.bars_published += 1
                    metrics.MESSAGES.labels(SERVICE, "bars").inc()
                elif env.kind == END:
                    self.finished = True
                    log.info("replay of run %s finished after %d steps", self.options.run_id, self.published)
                    return steps + 1
            self.published += 1
            steps += 1
        return steps

    def _next_envelopes(self, s: int) -> list[Any]:
        """The envelopes of step ``s`` (the next one of the source), or the end message."""
        limit = self.options.bars
        step = None if limit is not None and s >= limit else next(self._steps, None)
        if step is None:
            return [envelope(END, f"{self.options.run_id}:{SERVICE}:end", {"steps": s}, SERVICE)]
        n = len(step)
        return [envelope(m.BAR, self._ids(), {**m.bar_payload(bar, last), "step": s, "step_bars": n}, SERVICE)
                for bar, last in step]

    def state(self) -> dict[str, Any]:
        return {"run_id": self.options.run_id, "mode": self.source.mode, "instruments": list(self.source.instruments),
                "speed": self.speed, "paused": self.paused, "steps_published": self.published,
                "bars_published": self.bars_published, "finished": self.finished, "stream": self.stream,
                "bars_limit": self.options.bars}


def _bar_json(bar: Bar | Any, instrument: str | None = None) -> dict[str, Any]:
    t = pd.Timestamp(bar.time)
    return {"instrument": instrument or bar.instrument, "time": t.isoformat(), "time_ns": int(t.value),
            "open": float(bar.open), "high": float(bar.high), "low": float(bar.low), "close": float(bar.close),
            "volume": float(bar.volume)}


def _parse_time(name: str, value: str | None) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as e:
        raise HTTPException(422, detail=f"query parameter {name!r}: {value!r} is not a time "
                                        f"(expected ISO 8601, e.g. 2020-01-31 or 2020-01-31T15:00:00Z): {e}") from None
    if t is pd.NaT:
        raise HTTPException(422, detail=f"query parameter {name!r}: {value!r} is not a time (expected ISO 8601)")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def build_app(settings: Any, *, options: RunOptions, **_: Any) -> FastAPI:
    bus = BusHolder(settings)
    replay = Replay(options, bus)
    worker = LoopWorker("replay", SERVICE, replay.step, idle_s=0.001, on_stop=bus.close)
    app = make_app(SERVICE, title="alphaloop market data",
                   description="Instruments, bars by range, latest quote; replays bars onto the bars stream.",
                   workers=[worker], checks={"redis": bus.check}, max_body_bytes=settings.max_body_bytes)
    app.state.replay = replay
    auth = bearer_auth(settings.service_token)

    def frame(instrument: str) -> pd.DataFrame | None:
        frames = getattr(replay.source, "frames", {})
        if options.synthetic:
            return None
        if instrument not in frames:
            raise HTTPException(404, detail=f"unknown instrument {instrument!r}; known: {', '.join(frames)}")
        return frames[instrument]

    @app.get("/instruments", summary="Instruments of the run, with their data range")
    def instruments() -> list[dict[str, Any]]:
        out = []
        for name in replay.source.instruments:
            df = None if options.synthetic else replay.source.frames[name]
            if df is not None:
                out.append({"instrument": name, "bars": len(df), "start": df.index[0].isoformat(),
                            "end": df.index[-1].isoformat()})
            else:
                hist = replay.history[name]
                out.append({"instrument": name, "bars": len(hist),
                            "start": hist[0].time.isoformat() if hist else None,
                            "end": hist[-1].time.isoformat() if hist else None})
        return out

    @app.get("/bars/{instrument}", summary="Bars of an instrument between start and end (inclusive)")
    def bars(instrument: str = Path(..., max_length=200),
             start: str | None = Query(None, max_length=64, description="first time (ISO 8601, UTC if naive)"),
             end: str | None = Query(None, max_length=64, description="last time (ISO 8601, UTC if naive)"),
             limit: int = Query(1000, ge=1, le=MAX_LIMIT)) -> list[dict[str, Any]]:
        t0, t1 = _parse_time("start", start), _parse_time("end", end)
        if t0 is not None and t1 is not None and t0 > t1:
            raise HTTPException(422, detail=f"query parameters 'start' ({t0.isoformat()}) and 'end' "
                                            f"({t1.isoformat()}): start must not be after end")
        df = frame(instrument)
        if df is None:
            if instrument not in replay.source.instruments:
                raise HTTPException(404, detail=f"unknown instrument {instrument!r}")
            rows = [b for b in list(replay.history[instrument])
                    if (t0 is None or b.time >= t0) and (t1 is None or b.time <= t1)]
            return [_bar_json(b) for b in rows[:limit]]
        index = df.index if df.index.tz is not None else df.index.tz_localize("UTC")
        mask = [True] * len(df)
        if t0 is not None or t1 is not None:
            mask = ((index >= t0) if t0 is not None else True) & ((index <= t1) if t1 is not None else True)
        sel = df[mask].iloc[:limit]
        return [{"instrument": instrument, "time": t.isoformat(), "time_ns": int(t.value),
                 **{f: float(v) for f, v in zip(("open", "high", "low", "close", "volume"), row, strict=True)}}
                for t, row in zip(sel.index, sel[["open", "high", "low", "close", "volume"]].itertuples(index=False),
                                  strict=True)]

    @app.get("/quote/{instrument}", summary="The latest bar published for an instrument")
    def quote(instrument: str = Path(..., max_length=200)) -> dict[str, Any]:
        if instrument not in replay.source.instruments:
            raise HTTPException(404, detail=f"unknown instrument {instrument!r}; known: "
                                            f"{', '.join(replay.source.instruments)}")
        bar = replay.last.get(instrument)
        if bar is None:
            raise HTTPException(404, detail=f"no bar of {instrument} published yet")
        return {**_bar_json(bar), "price": float(bar.close)}

    @app.get("/replay", summary="State of the replay")
    def replay_state() -> dict[str, Any]:
        return replay.state()

    @app.post("/replay", summary="Change the replay's speed or pause/resume it", dependencies=[Depends(auth)])
    def replay_control(body: ReplayControl) -> dict[str, Any]:
        replay.control(body.speed, body.paused)
        return replay.state()

    return app
