"""The bus interface, modelled on Redis Streams so both adapters behave alike.

A stream is an append-only log. Consumers read through a named group: each entry goes to one
consumer of the group, stays pending until acknowledged, and is redelivered (to the same consumer
after a restart, or claimed by another) if it never is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from alphaloop.bus.envelope import Envelope


@dataclass(frozen=True, slots=True)
class Received:
    """One delivered entry: the stream's own entry id (for ack) and the envelope."""

    stream: str
    entry_id: str
    envelope: Envelope
    deliveries: int = 1


class MessageBus(Protocol):
    def publish(self, stream: str, envelope: Envelope) -> str:
        """Append; returns the stream entry id."""
        ...

    def ensure_group(self, stream: str, group: str) -> None:
        """Create the consumer group (reading from the start of the stream) if it does not exist."""
        ...

    def read(self, stream: str, group: str, consumer: str, count: int = 100, block_ms: int = 0,
             own_pending: bool = False) -> list[Received]:
        """New entries for this consumer; with ``own_pending`` its delivered-but-unacknowledged ones
        instead (what a restarted consumer reads first)."""
        ...

    def ack(self, stream: str, group: str, entry_ids: list[str]) -> int: ...

    def pending(self, stream: str, group: str) -> int: ...

    def length(self, stream: str) -> int: ...

    def close(self) -> None: ...
