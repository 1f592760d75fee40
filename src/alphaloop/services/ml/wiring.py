"""The predictor chain from configuration: ``TENSORRT_RUNNER_URL`` then ``ONNX_RUNNER_URL`` (each
``grpc://host:port`` or ``http://host:port``), failing over to the default predictor, with the
prediction cache in front. Neither set: ``None`` (the caller keeps the in-process runtime)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from alphaloop.core.errors import ConfigError
from alphaloop.ml.cache import PredictionCache
from alphaloop.services.ml.breaker import CircuitBreaker
from alphaloop.services.ml.client import MLGrpcClient, MLHttpClient
from alphaloop.services.ml.failover import CachedPredictor, FailoverPredictor, RemotePredictor

_SETTINGS = (("tensorrt", "tensorrt_runner_url", "TENSORRT_RUNNER_URL"),
             ("onnx", "onnx_runner_url", "ONNX_RUNNER_URL"))


def parse_runner_url(url: str, setting: str = "runner URL") -> tuple[str, str]:
    """``grpc://host:port`` -> ("grpc", "host:port"); ``http(s)://host:port[/prefix]`` -> ("http", url)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("grpc", "http", "https"):
        raise ConfigError(f"{setting}: {url!r} must start with grpc://, http:// or https://")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{setting}: {url!r} has a port that is not a number in [0, 65535]") from None
    if not parts.hostname or port is None:
        raise ConfigError(f"{setting}: {url!r} must name a host and a port (grpc://127.0.0.1:50051)")
    if parts.scheme == "grpc":
        if parts.path not in ("", "/"):
            raise ConfigError(f"{setting}: {url!r}: a gRPC address takes no path")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return "grpc", f"{host}:{port}"
    return "http", url.strip().rstrip("/")


def make_client(url: str, *, setting: str = "runner URL", timeout_s: float = 0.25, retries: int = 1,
                token: str | None = None, name: str | None = None) -> MLGrpcClient | MLHttpClient:
    kind, target = parse_runner_url(url, setting)
    if kind == "grpc":
        return MLGrpcClient(target, timeout_s=timeout_s, retries=retries, name=name or url)
    return MLHttpClient(target, timeout_s=timeout_s, retries=retries, token=token, name=name or url)


def build_remote_predictor(settings: Any, *, model: str = "", timeout_s: float = 0.25, retries: int = 1,
                           failure_threshold: int = 3, reset_timeout_s: float = 2.0,
                           cache: PredictionCache | bool = True, task: str | None = None,
                           strategy: str | None = None) -> CachedPredictor | FailoverPredictor | None:
    """The chain the configured runner URLs describe, or None when neither is set. ``model``: the
    registered model to ask for (empty: each runner's default); ``timeout_s``: one attempt's deadline;
    ``failure_threshold`` / ``reset_timeout_s``: each runner's circuit breaker; ``cache``: True for a
    fresh ``PredictionCache``, a cache to share, or False for none."""
    runners = []
    for name, attr, env in _SETTINGS:
        url = getattr(settings, attr, None)
        if url:
            client = make_client(url, setting=env, timeout_s=timeout_s, retries=retries,
                                 token=getattr(settings, "service_token", None), name=name)
            breaker = CircuitBreaker(name, failure_threshold=failure_threshold, reset_timeout_s=reset_timeout_s)
            runners.append(RemotePredictor(client, name=name, model=model, breaker=breaker, task=task,
                                           strategy=strategy))
    if not runners:
        return None
    chain = FailoverPredictor(runners, task=task, model=model)
    if cache is False:
        return chain
    return CachedPredictor(chain, cache if isinstance(cache, PredictionCache) else None, strategy=strategy)


__all__ = ["build_remote_predictor", "make_client", "parse_runner_url"]
