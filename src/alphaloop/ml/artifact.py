"""A trained model as the registry hands it to the runtime: ONNX bytes plus what is needed to use them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FeatureSchema:
    """The exact inputs a model was trained on, in order. ``name``/``version`` identify the feature set."""

    name: str
    version: int
    columns: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "columns": list(self.columns)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSchema:
        return cls(str(d["name"]), int(d["version"]), tuple(d["columns"]))


@dataclass(frozen=True, slots=True)
class ModelArtifact:
    """``task`` is "regression" (output: forward return) or "classification" (output: P(up)).
    ``onnx`` holds the model bytes; ``sha256`` is verified on load. Only ONNX is ever loaded."""

    name: str
    version: int
    task: str
    onnx: bytes
    schema: FeatureSchema
    horizon: int
    sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def digest(onnx: bytes) -> str:
        return hashlib.sha256(onnx).hexdigest()
