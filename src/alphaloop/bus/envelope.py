"""The typed, versioned message envelope every stream carries.

``id`` is assigned by the producer and stays the same on redelivery, so consumers can deduplicate;
``kind`` names the payload type ("bar", "signal", "order", "fill", "decision") and ``v`` its schema
version, so a consumer can refuse what it does not understand instead of misreading it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from alphaloop.core.errors import AlphaloopError

SCHEMA_VERSION = 1


class EnvelopeError(AlphaloopError):
    """A message could not be decoded or has an unknown kind/version."""

    exit_code = 9


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: str
    id: str
    payload: dict[str, Any]
    v: int = SCHEMA_VERSION
    ts_ns: int = field(default_factory=time.time_ns)
    source: str = ""

    def encode(self) -> dict[str, str]:
        """Flat string fields, as Redis Streams store them."""
        return {"kind": self.kind, "id": self.id, "v": str(self.v), "ts_ns": str(self.ts_ns),
                "source": self.source, "payload": json.dumps(self.payload, separators=(",", ":"))}

    @classmethod
    def decode(cls, fields: dict[str, Any]) -> Envelope:
        def text(key: str) -> str:
            value = fields.get(key, fields.get(key.encode()) if isinstance(next(iter(fields), ""), bytes) else None)
            if value is None:
                raise EnvelopeError(f"message lacks field '{key}'")
            return value.decode() if isinstance(value, bytes) else str(value)

        try:
            v = int(text("v"))
            payload = json.loads(text("payload"))
            ts_ns = int(text("ts_ns"))
        except (ValueError, json.JSONDecodeError) as e:
            raise EnvelopeError(f"undecodable message: {e}") from e
        if v > SCHEMA_VERSION:
            raise EnvelopeError(f"message schema v{v} is newer than this consumer understands (v{SCHEMA_VERSION})")
        if not isinstance(payload, dict):
            raise EnvelopeError("message payload must be a JSON object")
        return cls(kind=text("kind"), id=text("id"), payload=payload, v=v, ts_ns=ts_ns, source=text("source"))
