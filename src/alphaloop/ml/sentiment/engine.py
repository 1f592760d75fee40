"""The sentiment engine: scores texts through a backend with an LRU cache, and keeps per-instrument
readings to answer "what is the sentiment on X at time t" with exponential decay.

Aggregation. For instrument X at time ``at``, every reading i stored for X with ``t_i <= at`` (and
``t_i >= at - window`` when a window is given) gets the weight ``w_i = 0.5 ** ((at - t_i) /
half_life)``. Then

    score      = sum(w_i c_i s_i) / sum(w_i c_i)          (c_i: the reading's confidence)
    confidence = (sum(w_i c_i) / sum(w_i)) * (1 - 0.5 ** sum(w_i))

so a confident reading counts more than a hesitant one, and confidence is the mean confidence of
the evidence times how much recent evidence there is (one reading at ``at`` counts for half; it
approaches the mean as fresh readings pile up, and fades as they age). No reading, or none at or
before ``at``: score 0, confidence 0, "neutral". Readings after ``at`` are never used, so a
backtest asking at bar time sees only the news published by then.

Times are UTC (a naive time is taken as UTC, as everywhere in alphaloop).
"""

from __future__ import annotations

import bisect
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.core.predictions import Sentiment
from alphaloop.ml.errors import InferenceError
from alphaloop.ml.sentiment.base import (
    DEFAULT_MAX_CHARS,
    NEUTRAL,
    SentimentBackend,
    SentimentInputError,
    cap_text,
    check_max_chars,
    check_text,
    label_for,
)

DEFAULT_CACHE_SIZE = 10_000
DEFAULT_HALF_LIFE = pd.Timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of the engine's score cache since it was made (or last cleared)."""

    hits: int
    misses: int
    evictions: int
    size: int
    maxsize: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@dataclass(frozen=True, slots=True)
class Explanation:
    """A score with what is behind it: whether the text was cut to ``max_chars`` (``chars`` is the
    length given, ``scored_chars`` the length scored), whether the cache answered, and for the
    finance backend the phrase rules that fired."""

    sentiment: Sentiment
    truncated: bool
    chars: int
    scored_chars: int
    cached: bool
    hits: tuple[Any, ...] = ()


class _LRU:
    """A small thread-safe LRU map with hit/miss/eviction counters."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._data: OrderedDict[tuple[str, bytes], Sentiment] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    def get(self, key: tuple[str, bytes]) -> Sentiment | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[str, bytes], value: Sentiment) -> None:
        if self.maxsize == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
                self.evictions += 1

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.hits, self.misses, self.evictions, len(self._data), self.maxsize)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = self.evictions = 0


@dataclass(slots=True)
class _Series:
    """One instrument's readings, kept sorted by time (UTC ns)."""

    times: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)

    def add(self, t: int, score: float, confidence: float) -> None:
        i = bisect.bisect_right(self.times, t)
        self.times.insert(i, t)
        self.scores.insert(i, score)
        self.confidences.insert(i, confidence)


class SentimentEngine:
    """Score texts and aggregate them per instrument.

    ``backend``: any :class:`SentimentBackend`; default :class:`VaderFinanceBackend` (offline).
    ``cache_size``: scores kept in the LRU cache (0 turns caching off), keyed on the backend's
    name and the SHA-256 of the text scored. ``max_chars``: texts longer than this are cut to it
    (see :meth:`explain`). ``half_life``: default decay of :meth:`instrument_sentiment`.
    ``neutral_band``: band for aggregated labels (default: the backend's)."""

    def __init__(self, backend: SentimentBackend | None = None, *, cache_size: int = DEFAULT_CACHE_SIZE,
                 max_chars: int = DEFAULT_MAX_CHARS, half_life: Any = DEFAULT_HALF_LIFE,
                 neutral_band: float | None = None):
        if backend is None:
            from alphaloop.ml.sentiment.vader import VaderFinanceBackend

            backend = VaderFinanceBackend(max_chars=max_chars)
        if not isinstance(backend, SentimentBackend):
            raise TypeError(f"backend must have name, neutral_band and score_batch(); got {type(backend).__name__}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be an integer >= 0, got {cache_size!r}")
        self.backend = backend
        self.max_chars = check_max_chars(max_chars)
        self.half_life = _half_life(half_life)
        band = backend.neutral_band if neutral_band is None else float(neutral_band)
        if not 0.0 <= band < 1.0:
            raise ValueError(f"neutral_band must be in [0, 1), got {band}")
        self.neutral_band = band
        self._cache = _LRU(cache_size)
        self._series: dict[str, _Series] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ scoring

    def score(self, text: str) -> Sentiment:
        """Score one text. Raises :class:`SentimentInputError` for a non-string or blank text."""
        return self.score_many([text])[0]

    def score_many(self, texts: Iterable[str]) -> list[Sentiment]:
        """Score texts in order; all are checked before any is scored, repeats are scored once."""
        if isinstance(texts, str):
            raise SentimentInputError("texts: expected an iterable of strings, got a single string")
        capped = [cap_text(check_text(t, where=f"texts[{i}]"), self.max_chars)[0] for i, t in enumerate(texts)]
        return [s for s, _ in self._score_capped(capped)]

    def explain(self, text: str) -> Explanation:
        """Score one text and report truncation, cache use and (finance backend) the rules that fired."""
        text = check_text(text)
        capped, truncated = cap_text(text, self.max_chars)
        [(sentiment, cached)] = self._score_capped([capped])
        analyse = getattr(self.backend, "analyse", None)
        hits = tuple(analyse(capped).hits) if callable(analyse) else ()
        return Explanation(sentiment, truncated, len(text), len(capped), cached, hits)

    def _score_capped(self, capped: list[str]) -> list[tuple[Sentiment, bool]]:
        """(sentiment, from cache) per text; the misses go to the backend in one batch, repeats once."""
        keys = [self._key(t) for t in capped]
        found = [self._cache.get(k) for k in keys]
        todo: dict[tuple[str, bytes], str] = {}
        for k, t, s in zip(keys, capped, found):
            if s is None:
                todo.setdefault(k, t)
        fresh: dict[tuple[str, bytes], Sentiment] = {}
        if todo:
            scored = self.backend.score_batch(list(todo.values()))
            if len(scored) != len(todo):
                raise InferenceError(f"backend {self.backend.name!r} returned {len(scored)} results "
                                     f"for {len(todo)} texts")
            fresh = dict(zip(todo, scored))
            for k, s in fresh.items():
                self._cache.put(k, s)
        return [(s, True) if s is not None else (fresh[k], False) for k, s in zip(keys, found)]

    def _key(self, text: str) -> tuple[str, bytes]:
        return self.backend.name, hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    @property
    def cache_stats(self) -> CacheStats:
        return self._cache.stats()

    def clear_cache(self) -> None:
        self._cache.clear()

    # ------------------------------------------------------------------ per instrument

    def ingest(self, instrument: str, time: Any, text: str) -> Sentiment:
        """Score ``text`` and store it for ``instrument`` at ``time`` (UTC); returns the reading.
        Everything is checked before anything is stored."""
        instrument = _instrument(instrument)
        t = _to_ns(time, "time")
        sentiment = self.score(text)
        self.add_reading(instrument, t, sentiment)
        return sentiment

    def add_reading(self, instrument: str, time: Any, sentiment: Sentiment) -> None:
        """Store a reading made elsewhere (another engine, a remote service)."""
        instrument = _instrument(instrument)
        t = _to_ns(time, "time")
        if not isinstance(sentiment, Sentiment):
            raise SentimentInputError(f"sentiment: expected a Sentiment, got {type(sentiment).__name__}")
        if not (-1.0 <= sentiment.score <= 1.0 and 0.0 <= sentiment.confidence <= 1.0):
            raise SentimentInputError(f"sentiment out of range: score {sentiment.score}, confidence "
                                      f"{sentiment.confidence}")
        with self._lock:
            self._series.setdefault(instrument, _Series()).add(t, float(sentiment.score), float(sentiment.confidence))

    def instrument_sentiment(self, instrument: str, at: Any = None, *, half_life: Any = None,
                             window: Any = None) -> Sentiment:
        """The decayed sentiment on ``instrument`` at ``at`` from readings at or before ``at``.

        ``at=None`` means the time of the instrument's latest reading (pass the clock's time in
        live use, so that old news keeps fading). ``half_life`` overrides the engine's;
        ``window`` (a duration) ignores readings older than ``at - window``."""
        instrument = _instrument(instrument)
        hl = self.half_life if half_life is None else _half_life(half_life)
        at_ns = None if at is None else _to_ns(at, "at")
        span = None if window is None else _duration(window, "window").value
        source = f"{self.backend.name}:decayed"
        with self._lock:
            series = self._series.get(instrument)
            if series is None or not series.times:
                return Sentiment(0.0, 0.0, NEUTRAL, source)
            if at_ns is None:
                at_ns = series.times[-1]
            hi = bisect.bisect_right(series.times, at_ns)
            lo = 0 if span is None else bisect.bisect_left(series.times, at_ns - span)
            times = np.asarray(series.times[lo:hi], dtype=np.int64)
            scores = np.asarray(series.scores[lo:hi], dtype=float)
            confs = np.asarray(series.confidences[lo:hi], dtype=float)
        if times.size == 0:
            return Sentiment(0.0, 0.0, NEUTRAL, source)
        w = np.exp2(-(at_ns - times).astype(float) / float(hl.value))
        wc = w * confs
        total_wc, total_w = float(wc.sum()), float(w.sum())
        score = float(np.dot(wc, scores) / total_wc) if total_wc > 0 else 0.0
        confidence = (total_wc / total_w) * (1.0 - 2.0 ** -total_w) if total_w > 0 else 0.0
        score = min(max(score, -1.0), 1.0)
        return Sentiment(score, min(max(confidence, 0.0), 1.0), label_for(score, self.neutral_band), source)

    def instruments(self) -> list[str]:
        with self._lock:
            return sorted(self._series)

    def readings(self, instrument: str) -> pd.DataFrame:
        """The stored readings of ``instrument`` (columns score, confidence; UTC time index)."""
        with self._lock:
            s = self._series.get(_instrument(instrument), _Series())
            index = pd.DatetimeIndex(np.asarray(s.times, dtype=np.int64).view("datetime64[ns]"), name="time")
            return pd.DataFrame({"score": s.scores, "confidence": s.confidences}, index=index.tz_localize("UTC"))

    def prune(self, before: Any) -> int:
        """Drop readings older than ``before`` (all instruments); returns how many were dropped."""
        cut = _to_ns(before, "before")
        dropped = 0
        with self._lock:
            for name, s in list(self._series.items()):
                i = bisect.bisect_left(s.times, cut)
                if i:
                    dropped += i
                    del s.times[:i], s.scores[:i], s.confidences[:i]
                if not s.times:
                    del self._series[name]
        return dropped

    def __repr__(self) -> str:
        return f"SentimentEngine(backend={self.backend.name!r}, half_life={self.half_life})"


def _instrument(instrument: object) -> str:
    if not isinstance(instrument, str) or not instrument.strip():
        raise SentimentInputError(f"instrument: expected a non-empty string, got {instrument!r}")
    return instrument


def _to_ns(t: Any, what: str) -> int:
    """UTC nanoseconds of a time (naive is UTC)."""
    if type(t) is int:  # already ns (what the runners hand over)
        return t
    if isinstance(t, pd.Timestamp) and t.tzinfo is not None:
        return int(t.value)
    try:
        ts = pd.Timestamp(t)
    except (TypeError, ValueError) as e:
        raise SentimentInputError(f"{what}: not a time: {t!r} ({e})") from e
    if ts is pd.NaT or pd.isna(ts):
        raise SentimentInputError(f"{what}: a time is required, got {t!r}")
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def _duration(d: Any, what: str) -> pd.Timedelta:
    try:
        td = pd.Timedelta(d)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: not a duration: {d!r} ({e})") from e
    if td is pd.NaT or pd.isna(td) or td <= pd.Timedelta(0):
        raise ValueError(f"{what} must be a positive duration, got {d!r}")
    return td


def _half_life(d: Any) -> pd.Timedelta:
    return _duration(d, "half_life")

