"""What a strategy is, as data: enough to rebuild it, store it and compare it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """``name`` is a registered strategy (``sma_cross``) or ``path/to/file.py:ClassName``."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(sorted(self.params.items()))}

    @property
    def key(self) -> str:
        """A stable identity of name + parameters (same spec, same key)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
