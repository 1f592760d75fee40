"""The prediction cache: LRU order, TTL on a fake clock, invalidation, statistics, and the cached
runtime serving batches partly from cache (counting the rows that reach the real model)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_helpers import (
    assert_float32_close,
    columns,
    counted_runtime,
    make_artifact,
    poison_model,
    random_rows,
    ridge_model,
)

from alphaloop.core.predictions import InferencePath, Prediction
from alphaloop.ml.batching import MicroBatcher
from alphaloop.ml.cache import CachedRuntime, CacheKey, PredictionCache
from alphaloop.ml.errors import InferenceError, SchemaMismatchError
from alphaloop.ml.runtime import InferenceRuntime


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(row: object, model: str = "m", version: int = 1, instrument: str = "EURUSD",
        strategy: str | None = None) -> CacheKey:
    return CacheKey(model, version, instrument, strategy, row)


def pred(value: float, model: str = "m", version: int = 1) -> Prediction:
    return Prediction(value, 0.5, model, version, InferencePath.ONNX_CPU, 0.1)


# ---- the cache on its own -----------------------------------------------------------------------------


def test_lru_evicts_the_least_recently_used() -> None:
    cache = PredictionCache(max_size=3, ttl_s=None)
    for r in "abc":
        cache.put(key(r), pred(ord(r)))
    assert cache.get(key("a")) is not None      # a is now the most recent
    cache.put(key("d"), pred(4.0))               # evicts b, the least recent
    assert [k.row for k in cache.keys_by_recency()] == ["c", "a", "d"]
    assert cache.get(key("b")) is None
    cache.put(key("c"), pred(3.5))               # refresh: c moves to the front, nothing evicted
    cache.put(key("e"), pred(5.0))               # evicts a
    assert [k.row for k in cache.keys_by_recency()] == ["d", "c", "e"]
    assert cache.get(key("c")).value == 3.5
    s = cache.stats()
    assert (s.evictions, s.size, s.max_size) == (2, 3, 3)


def test_ttl_expires_on_the_injected_clock() -> None:
    clock = FakeClock()
    cache = PredictionCache(max_size=10, ttl_s=10.0, clock=clock)
    cache.put(key("a"), pred(1.0))
    cache.put(key("b"), pred(2.0), ttl_s=60.0)   # its own TTL
    clock.now += 9.5
    assert cache.get(key("a")).value == 1.0
    clock.now += 0.5                             # exactly ttl: gone
    assert cache.get(key("a")) is None
    assert cache.get(key("b")).value == 2.0
    cache.put(key("c"), pred(3.0))
    clock.now += 49.0
    assert cache.purge_expired() == 1            # c (put at 10 s, ttl 10) expired; b (ttl 60) has 1 s left
    clock.now += 1.0
    assert cache.get(key("b")) is None
    s = cache.stats()
    assert (s.expirations, s.size, s.hits, s.misses) == (3, 0, 2, 2)


def test_stats_count_hits_misses_and_rate() -> None:
    cache = PredictionCache(max_size=2, ttl_s=None)
    assert cache.stats().hit_rate == 0.0
    cache.put(key(1), pred(1.0))
    cache.get(key(1))
    cache.get(key(1))
    cache.get(key(2))
    s = cache.stats()
    assert (s.hits, s.misses, s.size) == (2, 1, 1)
    assert s.hit_rate == pytest.approx(2 / 3)
    assert s.to_dict()["hit_rate"] == pytest.approx(2 / 3)


def test_invalidation_per_model_and_per_strategy() -> None:
    cache = PredictionCache(max_size=100, ttl_s=None)
    for i in range(3):
        cache.put(key(i, version=1), pred(i))
        cache.put(key(i, version=2), pred(i, version=2))
        cache.put(key(i, model="other"), pred(i, model="other"))
        cache.put(key(i, strategy="ema-cross"), pred(i))
    assert len(cache) == 12
    assert cache.invalidate_model("m", version=1) == 6   # v1: 3 shared + 3 of the strategy
    assert cache.get(key(0, version=2)) is not None and cache.get(key(0)) is None
    assert cache.invalidate_strategy("ema-cross") == 0    # already gone with v1
    cache.put(key(9, version=2, strategy="ema-cross"), pred(9, version=2))
    assert cache.invalidate_strategy("ema-cross") == 1
    assert cache.invalidate_model("m") == 3              # every version left
    assert [k.model for k in cache.keys_by_recency()] == ["other"] * 3
    assert cache.clear() == 3 and len(cache) == 0
    assert cache.stats().invalidations == 13


def test_concurrent_use_keeps_counts_and_indexes_consistent() -> None:
    cache = PredictionCache(max_size=64, ttl_s=None)
    gets = 0
    lock = threading.Lock()

    def work(t: int) -> None:
        nonlocal gets
        n = 0
        for i in range(2000):
            k = key(i % 97, version=1 + i % 2, strategy=f"s{t % 3}")
            if cache.get(k) is None:
                cache.put(k, pred(float(i)))
            n += 1
            if i % 500 == 0:
                cache.invalidate_strategy(f"s{(t + 1) % 3}")
        with lock:
            gets += n

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    s = cache.stats()
    assert s.hits + s.misses == gets
    assert len(cache) <= 64
    # Every entry is reachable through the per-model index: removing by model empties the cache.
    assert cache.invalidate_model("m") == s.size and len(cache) == 0


class ReferenceLRU:
    """An obviously correct list-based model of an LRU + TTL cache."""

    def __init__(self, max_size: int, ttl: float):
        self.max_size, self.ttl, self.items = max_size, ttl, []  # (key, value, expires), oldest first

    def get(self, k: int, now: float) -> float | None:
        for i, (kk, v, exp) in enumerate(self.items):
            if kk == k:
                del self.items[i]
                if exp <= now:
                    return None
                self.items.append((kk, v, exp))
                return v
        return None

    def put(self, k: int, v: float, now: float) -> None:
        self.items = [it for it in self.items if it[0] != k] + [(k, v, now + self.ttl)]
        del self.items[:-self.max_size]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.lists(st.tuples(st.sampled_from(["put", "get", "tick"]), st.integers(0, 7)),
                                   max_size=60))
def test_cache_agrees_with_a_reference_lru(max_size: int, ops: list[tuple[str, int]]) -> None:
    clock = FakeClock()
    cache = PredictionCache(max_size=max_size, ttl_s=3.0, clock=clock)
    ref = ReferenceLRU(max_size, 3.0)
    for i, (op, k) in enumerate(ops):
        if op == "put":
            cache.put(key(k), pred(float(i)))
            ref.put(k, float(i), clock.now)
        elif op == "get":
            got = cache.get(key(k))
            assert (got.value if got else None) == ref.get(k, clock.now)
        else:
            clock.now += k / 2
    assert len(cache) == len(ref.items)


# ---- the cached runtime ---------------------------------------------------------------------------


@pytest.fixture()
def counted() -> tuple[InferenceRuntime, object]:
    return counted_runtime(make_artifact(ridge_model()[0], name="ridge", version=1))


def test_second_call_is_a_cache_hit(counted: tuple) -> None:
    rt, session = counted
    cached = CachedRuntime(rt, PredictionCache(ttl_s=None))
    row = random_rows(1, seed=3)[0]
    first = cached.predict(row, instrument="EURUSD")
    again = cached.predict(dict(zip(columns(), row.tolist())), instrument="EURUSD")
    assert session.batch_sizes == [1]
    assert (first.cached, again.cached) == (False, True)
    assert (again.value, again.confidence, again.path, again.model, again.version) == \
        (first.value, first.confidence, InferencePath.ONNX_CPU, "ridge", 1)
    other = cached.predict(row, instrument="GBPUSD")     # another instrument is another question
    assert not other.cached and session.batch_sizes == [1, 1]
    with pytest.raises(SchemaMismatchError):             # validated on hits too
        cached.predict({"f01": 1.0}, instrument="EURUSD")
    assert cached.stats().hits == 1


def test_batch_served_partly_from_cache_only_misses_reach_the_model(counted: tuple) -> None:
    rt, session = counted
    cached = CachedRuntime(rt, PredictionCache(ttl_s=None))
    x = random_rows(10, seed=4)
    first = cached.predict_batch(x[:6], instrument="AAPL")
    assert session.batch_sizes == [6] and not first.cached.any()
    mixed_rows = np.concatenate([x[6:8], x[[4, 0]], x[8:10], x[[2]]])  # 4 new, 3 seen, interleaved
    mixed = cached.predict_batch(mixed_rows, instrument="AAPL")
    assert session.batch_sizes == [6, 4]                 # only the 4 misses ran
    assert mixed.cached.tolist() == [False, False, True, True, False, False, True]
    expected = rt.predict_batch(mixed_rows)              # in the original order
    assert_float32_close(mixed.values, expected.values)
    assert_float32_close(mixed.confidences, expected.confidences)
    assert mixed.values[[2, 3, 6]].tolist() == first.values[[4, 0, 2]].tolist()  # hits: the stored answers
    assert [p.cached for p in mixed] == mixed.cached.tolist()
    assert all(p.path is InferencePath.ONNX_CPU for p in mixed)
    session.reset()
    full = cached.predict_batch(x, instrument="AAPL")
    assert session.batch_sizes == [] and full.cached.all()
    assert_float32_close(full.values, rt.predict_batch(x).values)


def test_bar_time_and_strategy_in_the_key(counted: tuple) -> None:
    rt, _ = counted
    cached = CachedRuntime(rt, PredictionCache(ttl_s=None))
    x = random_rows(3, seed=5)
    cached.predict(x[0], instrument="BTC", bar_time="2024-01-02T10:00Z", strategy="a")
    hit = cached.predict(x[1], instrument="BTC", bar_time="2024-01-02T10:00Z", strategy="a")
    assert hit.cached  # the caller vouches that a bar time identifies the features
    assert not cached.predict(x[0], instrument="BTC", bar_time="2024-01-02T10:00Z", strategy="b").cached
    batch = cached.predict_batch(x, instrument=["BTC", "ETH", "BTC"], strategy="a",
                                 bar_times=["2024-01-02T10:00Z", "2024-01-02T10:00Z", "2024-01-02T11:00Z"])
    assert batch.cached.tolist() == [True, False, False]
    assert cached.invalidate_strategy("a") == 3
    assert cached.stats().size == 1                      # strategy b's entry stays


def test_promoting_a_new_champion_drops_the_old_models_entries(counted: tuple) -> None:
    rt, _ = counted
    cached = CachedRuntime(rt, PredictionCache(ttl_s=None))
    x = random_rows(4, seed=6)
    cached.predict_batch(x, instrument="SPY")
    v2, session2 = counted_runtime(make_artifact(ridge_model()[0], name="ridge", version=2))
    assert cached.promote(v2) == 4 and len(cached.cache) == 0
    p = cached.predict(x[0], instrument="SPY")
    assert (p.version, p.cached, session2.batch_sizes) == (2, False, [1])


def test_default_predictor_answers_are_not_cached() -> None:
    broken = InferenceRuntime(make_artifact(b"corrupt"), providers=("cpu",))
    cached = CachedRuntime(broken, PredictionCache(ttl_s=None))
    row = random_rows(1)[0]
    assert cached.predict(row, instrument="X").path is InferencePath.DEFAULT
    assert not cached.predict(row, instrument="X").cached
    cached.predict_batch(random_rows(3), instrument="X")
    assert len(cached.cache) == 0


def test_cached_runtime_over_a_micro_batcher(counted: tuple) -> None:
    rt, session = counted
    x = random_rows(16, seed=7)
    with MicroBatcher(rt, max_batch_size=16, max_wait_us=20_000) as batcher:
        cached = CachedRuntime(batcher, PredictionCache(ttl_s=None))
        with ThreadPoolExecutor(16) as pool:
            first = list(pool.map(lambda i: cached.predict(x[i], instrument="Q"), range(16)))
            again = list(pool.map(lambda i: cached.predict(x[i], instrument="Q"), range(16)))
    assert sum(session.batch_sizes) == 16
    assert all(p.cached for p in again) and [p.value for p in again] == [p.value for p in first]
    assert_float32_close([p.value for p in first], rt.predict_batch(x).values)


def test_non_finite_rows_are_refused_through_the_cache(counted: tuple) -> None:
    rt, _ = counted
    cached = CachedRuntime(rt, PredictionCache(ttl_s=None))
    row = random_rows(1, seed=8)[0]
    cached.predict(row, instrument="X", bar_time=1)
    bad = row.copy()
    bad[3] = np.nan
    with pytest.raises(InferenceError, match="'f03'"):
        cached.predict(bad, instrument="X")
    with pytest.raises(InferenceError, match="'f03'"):  # even where a bar-time key would hit
        cached.predict(bad, instrument="X", bar_time=1)
    with pytest.raises(InferenceError, match="'f03'"):
        cached.predict_batch(np.stack([row, bad]), instrument="X")


def test_batch_mixing_cached_answers_and_a_failed_run_keeps_each_rows_path() -> None:
    rt, session = counted_runtime(make_artifact(poison_model()))
    cached = CachedRuntime(rt, PredictionCache(ttl_s=None))
    x = random_rows(4, seed=9)
    x[:, 0] = 0.5
    cached.predict_batch(x[:2], instrument="X")
    poisoned = x.copy()
    poisoned[3, 0] = 10.0  # this row makes the real model's run fail
    batch = cached.predict_batch(poisoned, instrument="X")
    assert session.batch_sizes == [2, 2]
    assert batch.paths == [InferencePath.ONNX_CPU] * 2 + [InferencePath.DEFAULT] * 2
    assert [p.path for p in batch] == batch.paths and batch.cached.tolist() == [True, True, False, False]
    assert batch.values[2:].tolist() == [0.0, 0.0]
    assert len(cached.cache) == 2  # the default answers were not stored
