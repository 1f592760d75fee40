"""The services of a deployment, their default ports and the order ``serve all`` starts them in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    http_port: int
    grpc_port: int | None = None
    role: str = ""


SERVICES: dict[str, ServiceInfo] = {s.name: s for s in (
    ServiceInfo("ml", 8001, 50051, "ML service: ONNX Runtime on CPU (gRPC + HTTP)"),
    ServiceInfo("tensorrt", 8007, 50057, "ML service with the GPU provider chain (TensorRT -> CUDA -> CPU)"),
    ServiceInfo("sentiment", 8002, None, "sentiment engine: score text, per-instrument sentiment, news ingest"),
    ServiceInfo("execution", 8006, None, "orders stream -> paper broker -> fills stream; positions"),
    ServiceInfo("strategy", 8005, None, "signals and fills in, orders out; decisions and explain"),
    ServiceInfo("patterns", 8004, None, "pattern engine: bars stream -> signals stream"),
    ServiceInfo("market-data", 9000, None, "instruments, bars, quotes; replays onto the bars stream"),
)}

# Downstream first, so that every consumer group exists before the data arrives.
START_ORDER = ("ml", "sentiment", "execution", "strategy", "patterns", "market-data")


def service(name: str) -> ServiceInfo:
    from alphaloop.core.errors import ConfigError

    try:
        return SERVICES[name]
    except KeyError:
        raise ConfigError(f"unknown service {name!r}; known: {', '.join(SERVICES)}, all") from None
