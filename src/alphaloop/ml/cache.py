"""Prediction cache: LRU with TTL, keyed on model version + instrument + feature-row identity.

A strategy that re-evaluates on every tick asks the same model the same question (same bar, same
features) many times; the cache answers those from memory in a few microseconds.

Keys (:class:`CacheKey`): model name and version, instrument, an optional strategy id (``None``:
shared by all strategies), and the row's identity: the float32 bytes the model would actually see
(two rows that differ only below float32 precision get the same answer, so they share an entry),
or a caller-given bar time, which skips nothing but makes the key readable.

Invalidation: per model (``invalidate_model(name, version=None)``: promoting a new champion frees the
old one's entries; new lookups already miss them because the version is in the key), per strategy,
or everything. Both indexes are kept alongside the LRU so invalidation costs the entries removed,
not the cache size.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd

from alphaloop.core.predictions import InferencePath, Prediction
from alphaloop.ml.runtime import PredictionBatch


class CacheKey(NamedTuple):
    model: str
    version: int
    instrument: str
    strategy: str | None
    row: Hashable  # float32 row bytes, or a caller-given bar time


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    expirations: int
    invalidations: int
    size: int
    max_size: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"hits": self.hits, "misses": self.misses, "evictions": self.evictions,
                "expirations": self.expirations, "invalidations": self.invalidations, "size": self.size,
                "max_size": self.max_size, "hit_rate": self.hit_rate}


class PredictionCache:
    """Thread-safe LRU cache of predictions with a time-to-live.

    ``max_size`` entries at most (least recently used go first); ``ttl_s`` seconds per entry
    (``None``: no expiry); ``clock`` returns seconds (monotonic; inject a fake one in tests).
    An expired entry counts as an expiration and a miss when looked up; :meth:`purge_expired` drops
    them all eagerly.
    """

    def __init__(self, max_size: int = 100_000, ttl_s: float | None = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive or None, got {ttl_s!r}")
        self.max_size = max_size
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._data: OrderedDict[CacheKey, tuple[Prediction, float]] = OrderedDict()
        self._by_model: dict[tuple[str, int], set[CacheKey]] = {}
        self._by_strategy: dict[str, set[CacheKey]] = {}
        self._hits = self._misses = self._evictions = self._expirations = self._invalidations = 0

    # ---- internals (call with the lock held) ---------------------------------------------------

    def _unlink(self, key: CacheKey) -> None:
        mk = (key.model, key.version)
        keys = self._by_model.get(mk)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_model[mk]
        if key.strategy is not None:
            keys = self._by_strategy.get(key.strategy)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_strategy[key.strategy]

    def _lookup(self, key: CacheKey, now: float) -> Prediction | None:
        entry = self._data.get(key)
        if entry is None:
            self._misses += 1
            return None
        if entry[1] <= now:
            del self._data[key]
            self._unlink(key)
            self._expirations += 1
            self._misses += 1
            return None
        self._data.move_to_end(key)
        self._hits += 1
        return entry[0]

    def _store(self, key: CacheKey, prediction: Prediction, expires: float, now: float) -> None:
        if key in self._data:
            self._data.move_to_end(key)
        else:
            self._by_model.setdefault((key.model, key.version), set()).add(key)
            if key.strategy is not None:
                self._by_strategy.setdefault(key.strategy, set()).add(key)
        self._data[key] = (prediction, expires)
        while len(self._data) > self.max_size:
            old, (_, old_expires) = self._data.popitem(last=False)
            self._unlink(old)
            if old_expires <= now:
                self._expirations += 1
            else:
                self._evictions += 1

    def _expiry(self, now: float, ttl_s: float | None) -> float:
        ttl = self.ttl_s if ttl_s is None else ttl_s
        return float("inf") if ttl is None else now + ttl

    def _drop(self, keys: Iterable[CacheKey]) -> int:
        n = 0
        for key in list(keys):
            if self._data.pop(key, None) is not None:
                self._unlink(key)
                n += 1
        self._invalidations += n
        return n

    # ---- public API ---------------------------------------------------------------------------

    def get(self, key: CacheKey) -> Prediction | None:
        now = self._clock()
        with self._lock:
            return self._lookup(key, now)

    def get_many(self, keys: Sequence[CacheKey]) -> list[Prediction | None]:
        now = self._clock()
        with self._lock:
            return [self._lookup(k, now) for k in keys]

    def put(self, key: CacheKey, prediction: Prediction, *, ttl_s: float | None = None) -> None:
        """Store (or refresh) one entry; ``ttl_s`` overrides the cache's TTL for it."""
        now = self._clock()
        with self._lock:
            self._store(key, prediction, self._expiry(now, ttl_s), now)

    def put_many(self, items: Iterable[tuple[CacheKey, Prediction]], *, ttl_s: float | None = None) -> None:
        now = self._clock()
        expires = self._expiry(now, ttl_s)
        with self._lock:
            for key, prediction in items:
                self._store(key, prediction, expires, now)

    def invalidate_model(self, name: str, version: int | None = None) -> int:
        """Drop every entry of model ``name`` (one ``version``, or all). Returns how many went."""
        with self._lock:
            groups = [mk for mk in self._by_model if mk[0] == name and (version is None or mk[1] == version)]
            return self._drop(k for mk in groups for k in self._by_model.get(mk, ()))

    def invalidate_strategy(self, strategy: str) -> int:
        """Drop every entry stored under strategy id ``strategy``. Returns how many went."""
        with self._lock:
            return self._drop(self._by_strategy.get(strategy, ()))

    def clear(self) -> int:
        with self._lock:
            return self._drop(list(self._data))

    def purge_expired(self) -> int:
        """Drop every expired entry now (lookups drop them lazily anyway)."""
        now = self._clock()
        with self._lock:
            dead = [k for k, (_, exp) in self._data.items() if exp <= now]
            for k in dead:
                del self._data[k]
                self._unlink(k)
            self._expirations += len(dead)
            return len(dead)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._evictions, self._expirations,
                              self._invalidations, len(self._data), self.max_size)

    def keys_by_recency(self) -> list[CacheKey]:
        """Keys from least to most recently used (a snapshot)."""
        with self._lock:
            return list(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        """Presence without touching recency or statistics (expired entries still count)."""
        return key in self._data


class Predictor(Protocol):
    """What :class:`CachedRuntime` wraps: an ``InferenceRuntime`` or a ``MicroBatcher``."""

    name: Any
    version: Any

    def prepare_row(self, features: Any, *, check_finite: bool = True) -> np.ndarray: ...
    def prepare_batch(self, rows: Any) -> np.ndarray: ...
    def predict(self, features: Any, *, timeout: float | None = None) -> Prediction: ...
    def predict_batch(self, rows: Any, *, timeout: float | None = None) -> PredictionBatch: ...


class CachedRuntime:
    """A predictor with a cache in front. Hits come back with ``cached=True`` and the lookup's own
    latency; the default predictor's answers are never stored (a fallback must not outlive the
    failure that caused it). Input is validated on hits too: a wrong schema never hits."""

    def __init__(self, predictor: Predictor, cache: PredictionCache | None = None):
        self.predictor = predictor
        self.cache = cache if cache is not None else PredictionCache()

    @property
    def name(self) -> str:
        return self.predictor.name

    @property
    def version(self) -> int:
        return self.predictor.version

    def predict(self, features: Mapping[str, float] | pd.Series | np.ndarray, *, instrument: str,
                strategy: str | None = None, bar_time: Hashable | None = None,
                timeout: float | None = None) -> Prediction:
        t0 = time.perf_counter()
        predictor = self.predictor  # one read: a concurrent promote() must not split name and version
        # Keyed on the row's bytes, a non-finite row cannot hit (none is ever stored) and its miss is
        # checked by predict(): skip the check on the hit path. A bar-time key vouches for nothing.
        x = predictor.prepare_row(features, check_finite=bar_time is not None)
        key = CacheKey(predictor.name, predictor.version, instrument, strategy,
                       x.tobytes() if bar_time is None else bar_time)
        hit = self.cache.get(key)
        if hit is not None:
            return Prediction(hit.value, hit.confidence, hit.model, hit.version, hit.path,
                              (time.perf_counter() - t0) * 1000.0, True)
        prediction = predictor.predict(x, timeout=timeout)
        if prediction.path is not InferencePath.DEFAULT:
            self.cache.put(key, prediction)
        return prediction

    def predict_batch(self, rows: np.ndarray | pd.DataFrame | Sequence[Mapping[str, float]], *,
                      instrument: str | Sequence[str], strategy: str | None = None,
                      bar_times: Sequence[Hashable] | None = None,
                      timeout: float | None = None) -> PredictionBatch:
        """Rows found in the cache are served from it; only the misses go to the model, in one batch,
        and the answers come back in the original row order. ``instrument`` is one for all rows or
        one per row; ``bar_times`` (one per row) replaces the row bytes as identity."""
        t0 = time.perf_counter()
        predictor = self.predictor
        name, version = predictor.name, predictor.version
        x = predictor.prepare_batch(rows)
        n = x.shape[0]
        instruments = [instrument] * n if isinstance(instrument, str) else list(instrument)
        if len(instruments) != n:
            raise ValueError(f"{len(instruments)} instruments for {n} rows")
        if bar_times is None:
            width = x.shape[1] * x.itemsize
            raw = x.tobytes()  # one copy, then cheap slices: faster than n tobytes() calls
            idents: list[Hashable] = [raw[i * width:(i + 1) * width] for i in range(n)]
        else:
            idents = list(bar_times)
            if len(idents) != n:
                raise ValueError(f"{len(idents)} bar times for {n} rows")
        keys = [CacheKey(name, version, inst, strategy, ident) for inst, ident in zip(instruments, idents)]
        hits = self.cache.get_many(keys)
        miss = [i for i, h in enumerate(hits) if h is None]
        values = np.empty(n)
        confidences = np.empty(n)
        cached = np.ones(n, dtype=bool)
        paths: list[InferencePath] = [InferencePath.DEFAULT] * n
        if miss:
            answered = predictor.predict_batch(x[miss], timeout=timeout)
            values[miss] = answered.values
            confidences[miss] = answered.confidences
            cached[miss] = False
            answered_paths = answered.paths
            for i, p in zip(miss, answered_paths):
                paths[i] = p
            self.cache.put_many((keys[i], answered[j]) for j, i in enumerate(miss)
                                if answered_paths[j] is not InferencePath.DEFAULT)
        for i, h in enumerate(hits):
            if h is not None:
                values[i] = h.value
                confidences[i] = h.confidence
                paths[i] = h.path
        uniform = len(set(paths)) <= 1
        return PredictionBatch(values, confidences, model=name, version=version,
                               path=paths[0] if n else InferencePath.DEFAULT,
                               latency_ms=(time.perf_counter() - t0) * 1000.0, cached=cached,
                               paths=None if uniform else paths)

    def promote(self, predictor: Predictor) -> int:
        """Serve a new model (the new champion) and drop the old one's entries. Returns how many went.
        Requests already running on the old model may still store a few entries under the old version;
        nothing looks them up and they age out."""
        old = self.predictor
        self.predictor = predictor
        if (old.name, old.version) == (predictor.name, predictor.version):
            return 0
        return self.cache.invalidate_model(old.name, old.version)

    def invalidate_strategy(self, strategy: str) -> int:
        return self.cache.invalidate_strategy(strategy)

    def invalidate_model(self, name: str, version: int | None = None) -> int:
        return self.cache.invalidate_model(name, version)

    def stats(self) -> CacheStats:
        return self.cache.stats()


__all__ = ["CacheKey", "CacheStats", "CachedRuntime", "PredictionCache", "Predictor"]
