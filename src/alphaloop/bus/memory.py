"""In-memory bus: the embedded default. Same semantics as the Redis adapter, in one process."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from alphaloop.bus.base import Received
from alphaloop.bus.envelope import Envelope


@dataclass
class _Group:
    next_index: int = 0  # first entry not yet delivered to any consumer of the group
    pending: dict[int, tuple[str, int]] = field(default_factory=dict)  # index -> (consumer, deliveries)


class InMemoryBus:
    def __init__(self, maxlen: int | None = None):
        self._streams: dict[str, list[Envelope]] = defaultdict(list)
        self._offsets: dict[str, int] = defaultdict(int)  # entries trimmed from the front
        self._groups: dict[tuple[str, str], _Group] = {}
        self._maxlen = maxlen
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)

    def publish(self, stream: str, envelope: Envelope) -> str:
        with self._cond:
            entries = self._streams[stream]
            entries.append(envelope)
            index = self._offsets[stream] + len(entries) - 1
            if self._maxlen and len(entries) > self._maxlen:
                # trim only what every group has already acknowledged
                floor = min([g.next_index for (s, _), g in self._groups.items() if s == stream] or [index])
                floor = min([floor, *[min(g.pending, default=floor) for (s, _), g in self._groups.items() if s == stream]])
                drop = min(len(entries) - self._maxlen, floor - self._offsets[stream])
                if drop > 0:
                    del entries[:drop]
                    self._offsets[stream] += drop
            self._cond.notify_all()
            return f"{index}-0"

    def ensure_group(self, stream: str, group: str) -> None:
        with self._lock:
            self._groups.setdefault((stream, group), _Group(next_index=self._offsets[stream]))

    def read(self, stream: str, group: str, consumer: str, count: int = 100, block_ms: int = 0,
             own_pending: bool = False) -> list[Received]:
        with self._cond:
            g = self._groups.setdefault((stream, group), _Group(next_index=self._offsets[stream]))
            entries, offset = self._streams[stream], self._offsets[stream]
            out: list[Received] = []
            if own_pending:  # what a restarted consumer reads first (XREADGROUP ... 0)
                for i, (owner, deliveries) in sorted(g.pending.items()):
                    if owner == consumer and len(out) < count:
                        g.pending[i] = (owner, deliveries + 1)
                        out.append(Received(stream, f"{i}-0", entries[i - offset], deliveries + 1))
                return out
            if g.next_index >= offset + len(entries) and block_ms > 0:
                self._cond.wait(block_ms / 1000)
                entries, offset = self._streams[stream], self._offsets[stream]
            while g.next_index < offset + len(entries) and len(out) < count:
                i = g.next_index
                g.pending[i] = (consumer, 1)
                out.append(Received(stream, f"{i}-0", entries[i - offset], 1))
                g.next_index += 1
            return out

    def ack(self, stream: str, group: str, entry_ids: list[str]) -> int:
        with self._lock:
            g = self._groups.get((stream, group))
            if g is None:
                return 0
            n = 0
            for eid in entry_ids:
                if g.pending.pop(int(eid.split("-")[0]), None) is not None:
                    n += 1
            return n

    def pending(self, stream: str, group: str) -> int:
        with self._lock:
            g = self._groups.get((stream, group))
            return len(g.pending) if g else 0

    def length(self, stream: str) -> int:
        with self._lock:
            return len(self._streams[stream])

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()
