"""What the pipeline services (market-data, patterns, strategy, execution) share: the run they take
part in, the streams and markers of the lock-step protocol, and the Redis plumbing.

The protocol (see :mod:`alphaloop.live.lockstep` for the step it runs):

| stream | messages | producer -> consumer |
|---|---|---|
| ``RUN:bars`` | ``bar`` (+ ``step``, ``step_bars``), ``end`` | market-data -> patterns |
| ``RUN:signals`` | ``signal``, ``step`` (the admitted bars of one timestamp), ``end`` | patterns -> strategy |
| ``RUN:orders`` | ``order``, ``cancel``, ``clock`` (broker actions to carry out, after these orders) | strategy -> execution |
| ``RUN:fills`` | execution reports, ``clock`` (one per action done; check_ruin's verdict) | execution -> strategy |
| ``RUN:decisions`` | ``decision`` | strategy -> audit |

Every id is deterministic (``RUN:producer:...`` from counters that restart with the run, or derived
from the input's position), so a service that rebuilds its state by processing its input streams
again from the beginning republishes the *same* ids, and every consumer drops what it has seen.
That is the whole recovery story: a restarted (or reconnected) service rewinds its consumer groups
to the start of its streams, replays them through the same deterministic code, and continues live.

Limit: streams are trimmed to ``STREAM_MAXLEN`` entries (approximate MAXLEN). A run longer than that
cannot be replayed from its streams after a crash; it would need snapshots of the engines' state,
which this version does not write.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alphaloop.bus.redis_streams import BusUnavailableError, RedisStreamsBus
from alphaloop.core.errors import ConfigError
from alphaloop.live import messages as m
from alphaloop.services import metrics

log = logging.getLogger(__name__)

CLOCK, STEP, END = "clock", "step", "end"
STREAM_MAXLEN = 1_000_000  # entries kept per stream: a run (and its replays) must fit for recovery
BUS_PREFIX = "alphaloop"


@dataclass(frozen=True)
class RunOptions:
    """One run of the pipeline, as every service of it is told (the same flags as ``alphaloop run``)."""

    run_id: str
    data: tuple[str, ...] = ()
    synthetic: bool = False
    instrument: str = "SYNTH"  # the synthetic stream's instrument
    seed: int = 7
    bars: int | None = None  # stop after this many timeline steps
    speed: float = 0.0  # timeline steps per second; 0 = as fast as possible
    strategy: str = "sma_cross"
    params: dict[str, Any] = field(default_factory=dict)
    cash: float = 10_000.0
    commission: float = 0.0
    model: str | None = None
    news: str | None = None
    paused: bool = False  # market-data: wait for POST /replay before publishing

    def __post_init__(self) -> None:
        if not self.run_id or any(c in self.run_id for c in " \t\n*?[]"):
            raise ConfigError(f"run id {self.run_id!r}: expected a non-empty name without spaces or wildcards")
        if not self.data and not self.synthetic:
            raise ConfigError("no market data: give --data FILE (repeatable) or --synthetic")
        if self.data and self.synthetic:
            raise ConfigError("give either --data or --synthetic, not both")
        if not (math.isfinite(self.speed) and self.speed >= 0):
            raise ConfigError(f"--speed must be >= 0 bars per second, got {self.speed}")
        if self.bars is not None and self.bars < 1:
            raise ConfigError(f"--bars must be at least 1, got {self.bars}")

    @property
    def streams(self) -> m.Streams:
        return m.Streams.prefixed(f"{self.run_id}:")

    def broker_config(self) -> Any:
        from alphaloop.execution import BrokerConfig, Commission

        return BrokerConfig(initial_cash=self.cash, commission=Commission(rate=self.commission))

    def strategy_object(self) -> Any:
        from alphaloop.strategy import load_strategy

        return load_strategy(self.strategy, dict(self.params))

    def source(self) -> Any:
        """The bar source (validated once, here): the files, or the endless synthetic stream."""
        from alphaloop.live import MarketDataReplay

        if self.synthetic:
            return MarketDataReplay.synthetic(seed=self.seed, instrument=self.instrument, speed=self.speed)
        return MarketDataReplay.from_sources([str(Path(p)) for p in self.data], speed=self.speed)

    def instruments(self) -> list[str]:
        if self.synthetic:
            return [self.instrument]
        return list(self.source().instruments)

    def to_args(self) -> list[str]:
        """The command-line flags that give these options (what the supervisor passes on)."""
        args = ["--run-id", self.run_id, "--strategy", self.strategy, "--params", json.dumps(self.params),
                "--speed", repr(self.speed), "--cash", repr(self.cash), "--commission", repr(self.commission),
                "--seed", str(self.seed), "--instrument", self.instrument]
        for path in self.data:
            args += ["--data", str(path)]
        if self.synthetic:
            args.append("--synthetic")
        if self.bars is not None:
            args += ["--bars", str(self.bars)]
        if self.model:
            args += ["--model", self.model]
        if self.news:
            args += ["--news", self.news]
        if self.paused:
            args.append("--paused")
        return args


def connect_bus(settings: Any) -> RedisStreamsBus:
    """A bus on the configured Redis (raises BusUnavailableError while it is unreachable)."""
    return RedisStreamsBus(settings.redis_url, prefix=BUS_PREFIX, maxlen=STREAM_MAXLEN)


class BusHolder:
    """The service's connection to Redis, made on first use and again after it failed, so a service
    starts while Redis is down and picks it up when it comes back."""

    def __init__(self, settings: Any):
        self.settings = settings
        self._bus: RedisStreamsBus | None = None

    def get(self) -> RedisStreamsBus:
        if self._bus is None:
            self._bus = connect_bus(self.settings)
        return self._bus

    def check(self) -> dict[str, Any]:
        try:
            return {"ok": self.get().ping(), "url": self.get().shown_url}
        except BusUnavailableError as e:
            return {"ok": False, "error": str(e)}

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()


def database_check(store: Any) -> Callable[[], dict[str, Any]]:
    def check() -> dict[str, Any]:
        from sqlalchemy import text

        try:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return {"ok": True}
        except Exception as e:  # any failure reaching the database is "not ready"
            return {"ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
    return check


class MetricsClock:
    """Refresh the bus gauges at most every ``every_s`` seconds (XINFO costs a round trip)."""

    def __init__(self, every_s: float = 1.0):
        self.every_s = every_s
        self._last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True


def refresh_bus_metrics(bus: RedisStreamsBus, service: str, pairs: list[tuple[str, str]]) -> None:
    """Set the pending and lag gauges of this service's consumer groups."""
    for stream, group in pairs:
        pending, lag = bus.group_stats(stream, group)
        metrics.BUS_PENDING.labels(service, stream, group).set(pending)
        if lag is not None:
            metrics.BUS_LAG.labels(service, stream, group).set(lag)


class Outbox:
    """The bus as a producer that finishes a unit of work before it sends sees it: ``publish`` keeps
    the envelope, :meth:`flush` sends everything kept in one round trip. Reads, acks and groups go
    straight to the bus. Safe because a service that fails before flushing rebuilds its state from
    the streams and produces the same messages again."""

    def __init__(self, bus: RedisStreamsBus):
        self.bus = bus
        self.items: list[tuple[str, Any]] = []

    def publish(self, stream: str, env: Any) -> str:
        self.items.append((stream, env))
        return ""

    def flush(self) -> int:
        n = len(self.items)
        if n:
            self.bus.publish_many(self.items)
            self.items = []
        return n

    def exchange(self, stream: str, group: str, consumer: str, *, count: int, block_ms: int,
                 acks: list[tuple[str, str, list[str]]] = ()) -> list[Any]:  # type: ignore[assignment]
        """Send everything kept, acknowledge ``acks`` and read ``stream``, in one round trip."""
        got = self.bus.exchange(self.items, stream, group, consumer, count=count, block_ms=block_ms, acks=acks)
        self.items = []
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bus, name)


class Stopping(Exception):
    """The service is shutting down in the middle of a wait."""


def envelope(kind: str, message_id: str, payload: dict[str, Any], source: str) -> Any:
    return m.envelope(kind, message_id, payload, source)
