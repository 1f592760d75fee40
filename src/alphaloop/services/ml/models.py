"""The models an ML service serves: loaded from the registry on first use, each behind the provider
chain (``InferenceRuntime``), optionally a ``MicroBatcher``, and a ``CachedRuntime``.

A name resolves to its champion, else its latest version. :meth:`ModelHost.reload` swaps in what the
registry now says (after training or a promotion) and drops the old version's cache entries. A model
is *ready* when it serves on an ONNX path; one that fell to the default predictor (no provider could
run it) is loaded but not ready, and health checks say so.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from alphaloop.core.predictions import InferencePath
from alphaloop.ml.batching import MicroBatcher
from alphaloop.ml.cache import CachedRuntime, PredictionCache
from alphaloop.ml.errors import MLError, ModelNotFoundError
from alphaloop.ml.registry import CHAMPION, ModelRegistry
from alphaloop.ml.runtime import PROVIDER_CHAIN, InferenceRuntime
from alphaloop.services.ml.errors import BadRequest

log = logging.getLogger(__name__)

CPU_CHAIN: tuple[str, ...] = ("cpu",)
GPU_CHAIN: tuple[str, ...] = PROVIDER_CHAIN  # tensorrt -> cuda -> cpu; the runtime falls back by itself
OLD_BATCHER_GRACE_S = 5.0
RETRY_LOAD_S = 1.0  # a model that failed to load is tried again at most this often by health checks


@dataclass
class ServedModel:
    """One loaded model version and the objects that answer for it."""

    name: str
    version: int
    task: str
    runtime: InferenceRuntime
    cached: CachedRuntime
    batcher: MicroBatcher | None
    loaded_at: float

    @property
    def path(self) -> InferencePath:
        return self.runtime.path

    @property
    def ready(self) -> bool:
        return self.runtime.path is not InferencePath.DEFAULT

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.runtime.close()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "task": self.task, "path": self.path.value,
                "ready": self.ready, "providers": self.runtime.provider_report().to_dict(),
                "cache": self.cached.stats().to_dict()}


class ModelHost:
    """Serves registered models by name. Thread-safe: loading is serialised per host, serving is not.

    ``providers``: the chain each runtime tries (``CPU_CHAIN`` for the ONNX runner, ``GPU_CHAIN`` for
    the TensorRT runner). ``default_model``: what an empty model name means. ``on_change(name, ready)``
    is told whenever a model's readiness is (re)established, for the gRPC health service.
    """

    def __init__(self, registry: ModelRegistry, *, providers: Sequence[str] = CPU_CHAIN,
                 default_model: str | None = None, cache_size: int = 100_000, cache_ttl_s: float | None = 60.0,
                 micro_batch: bool = False, intra_op_threads: int | None = None,
                 on_change: Callable[[str, bool], None] | None = None):
        self.registry = registry
        self.providers = tuple(providers)
        self.default_model = default_model or None
        self.cache = PredictionCache(max_size=cache_size, ttl_s=cache_ttl_s)
        self.micro_batch = micro_batch
        self.intra_op_threads = intra_op_threads
        self.on_change = on_change
        self._models: dict[str, ServedModel] = {}
        self._errors: dict[str, tuple[float, str]] = {}  # name -> (when, why) of the last failed load
        self._lock = threading.RLock()

    # ---- names ----------------------------------------------------------------------------------
    def resolve_name(self, name: str | None) -> str:
        """The model an empty name means: the default model, else the only registered one."""
        if name:
            return name
        if self.default_model:
            return self.default_model
        known = self.registry.backend.list_models()
        if len(known) == 1:
            return known[0]
        raise BadRequest("model", f"a model name is required: this service has no default model and "
                                  f"{len(known)} are registered ({', '.join(known) or 'none'})")

    # ---- loading --------------------------------------------------------------------------------
    def get(self, name: str | None) -> ServedModel:
        """The served model of that name, loading it on first use (ModelNotFoundError, ModelLoadError)."""
        key = self.resolve_name(name)
        served = self._models.get(key)
        if served is not None:
            return served
        with self._lock:
            served = self._models.get(key)
            if served is None:
                served = self._load(key)
        return served

    def reload(self, name: str) -> ServedModel:
        """Serve what the registry now resolves ``name`` to; the old version's cache entries go. The
        old runtime is not closed: requests still running on it finish, and it is freed with them."""
        with self._lock:
            old = self._models.get(name)
            fresh = self._load(name)
            if old is not None and old.version != fresh.version:
                self.cache.invalidate_model(old.name, old.version)
            if old is not None and old.batcher is not None:
                # New requests already go to the fresh one; a request that picked the old one just
                # before the swap gets a few seconds to queue on it before its worker stops.
                timer = threading.Timer(OLD_BATCHER_GRACE_S, old.batcher.close)
                timer.daemon = True
                timer.start()
            return fresh

    def _load(self, name: str) -> ServedModel:
        try:
            alias = CHAMPION if self.registry.backend.get_alias(name, CHAMPION) is not None else None
            artifact = self.registry.load(name, alias=alias)
            runtime = InferenceRuntime(artifact, self.providers, intra_op_threads=self.intra_op_threads)
        except ModelNotFoundError as e:
            if name == self.default_model:  # any other unknown name is the caller's mistake: keep no state
                self._errors[name] = (time.monotonic(), str(e))
                self._notify(name, False)
            raise
        except MLError as e:  # registered but unusable (file missing, hash mismatch, bad graph)
            if len(self._errors) > 1000:
                self._errors.clear()
            self._errors[name] = (time.monotonic(), str(e))
            self._notify(name, False)
            raise
        batcher = MicroBatcher(runtime) if self.micro_batch else None
        served = ServedModel(artifact.name, artifact.version, artifact.task, runtime,
                             CachedRuntime(batcher or runtime, self.cache), batcher, time.time())
        self._models[name] = served
        self._errors.pop(name, None)
        log.info("serving model %s v%s on %s", served.name, served.version, served.path.value)
        self._notify(name, served.ready)
        return served

    def _notify(self, name: str, ready: bool) -> None:
        if self.on_change is not None:
            self.on_change(name, ready)

    def preload(self, names: Sequence[str]) -> None:
        """Load these now (a failure is logged and left for health checks to retry)."""
        for name in names:
            try:
                self.get(name)
            except MLError as e:
                log.warning("model %s not loaded: %s", name, e)

    # ---- state ----------------------------------------------------------------------------------
    def loaded(self) -> dict[str, ServedModel]:
        return dict(self._models)

    def health(self) -> dict[str, Any]:
        """Ready when the default model (if one is configured) serves on an ONNX path; a default model
        that failed to load is tried again here, at most once a second."""
        out: dict[str, Any] = {"models": {n: {"version": s.version, "path": s.path.value, "ready": s.ready}
                                          for n, s in self._models.items()}}
        name = self.default_model
        if name is None:
            out["ok"] = all(s.ready for s in self._models.values())
            return out
        served = self._models.get(name)
        if served is None:
            failed = self._errors.get(name)
            if failed is None or time.monotonic() - failed[0] >= RETRY_LOAD_S:
                with contextlib.suppress(MLError):
                    served = self.get(name)
        if served is None:
            out.update(ok=False, error=f"default model {name!r} not loaded: {self._errors.get(name, (0, '?'))[1]}")
        else:
            out["ok"] = served.ready
            if not served.ready:
                out["error"] = f"model {name!r} answers with the default predictor only"
        return out

    def close(self) -> None:
        with self._lock:
            for served in self._models.values():
                served.close()
            self._models.clear()


__all__ = ["CPU_CHAIN", "GPU_CHAIN", "ModelHost", "ServedModel"]
