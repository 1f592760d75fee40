"""What the ML layer answers: a price prediction and a sentiment reading, each saying where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class InferencePath(StrEnum):
    """Which part of the provider chain answered (TensorRT -> CUDA -> ONNX CPU -> default)."""

    TENSORRT = "tensorrt"
    CUDA = "cuda"
    ONNX_CPU = "onnx_cpu"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Prediction:
    """``value``: the model's output (forward return for regression, probability of an up move for
    classification); ``confidence`` in [0, 1]; ``latency_ms`` of the call that produced it."""

    value: float
    confidence: float
    model: str
    version: int
    path: InferencePath
    latency_ms: float
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Sentiment:
    """``score`` in [-1, 1], ``confidence`` in [0, 1], ``label`` positive/negative/neutral, and the
    backend that produced it (``source``)."""

    score: float
    confidence: float
    label: str
    source: str
