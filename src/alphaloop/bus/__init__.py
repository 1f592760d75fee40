"""The message bus between engines: one interface, an in-memory adapter (embedded default) and
Redis Streams (production). Delivery is at least once; consumers deduplicate by message id."""

from alphaloop.bus.base import MessageBus, Received
from alphaloop.bus.envelope import Envelope
from alphaloop.bus.memory import InMemoryBus

__all__ = ["Envelope", "InMemoryBus", "MessageBus", "Received"]
