"""The message bus between engines: one interface, an in-memory adapter (embedded default) and
Redis Streams (production). Delivery is at least once; consumers deduplicate by message id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alphaloop.bus.base import MessageBus, Received
from alphaloop.bus.envelope import Envelope
from alphaloop.bus.memory import InMemoryBus

if TYPE_CHECKING:
    from alphaloop.bus.redis_streams import RedisStreamsBus

__all__ = ["Envelope", "InMemoryBus", "MessageBus", "Received", "RedisStreamsBus"]


def __getattr__(name: str) -> Any:
    # lazy, so that importing alphaloop.bus does not require redis
    if name == "RedisStreamsBus":
        from alphaloop.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
