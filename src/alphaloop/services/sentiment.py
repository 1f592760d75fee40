"""The sentiment engine as a service (port 8002): score text, answer the decayed sentiment on an
instrument at a time, and ingest news items.

Endpoints (besides /health, /metrics from :func:`~alphaloop.services.http_app.make_app`):

* ``POST /score`` ``{"text": "..."}`` or ``{"texts": [...]}`` -> ``{"results": [{score, label,
  confidence, source}], "backend": ...}``, in the order given;
* ``GET /sentiment/{instrument}?at=`` -> the engine's :meth:`~alphaloop.ml.sentiment.SentimentEngine.
  instrument_sentiment` (``at``: ISO 8601 or integer UTC nanoseconds; absent = latest reading);
* ``POST /news`` (bearer token when one is configured) ``{"items": [{id?, instrument, time, text}]}``
  -> ``{"accepted", "duplicates"}``; an item seen before (same ``id``, or without one the same
  instrument, time and text) is counted as a duplicate and changes nothing, so a producer may resend;
* ``GET /news/{instrument}?limit=`` -> the stored items, newest first, with their scores;
* ``GET /stats`` -> score cache counters, instruments and item counts.

Every request is validated whole before anything is stored: one bad item refuses the request (422
naming the item and field) and nothing of it is ingested. News lives in this process's memory, as
in the embedded engine (``--news`` CSV at start, ``POST /news`` after).

Run it with ``python -m alphaloop.services.sentiment [--port 8002] [--news FILE.csv]`` (or ``alphaloop
serve sentiment``).
"""

from __future__ import annotations

import bisect
import hashlib
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from alphaloop.core.errors import DataError
from alphaloop.ml.sentiment import SentimentEngine
from alphaloop.services import metrics
from alphaloop.services.http_app import bearer_auth, make_app

SERVICE = "sentiment"
MAX_TEXT_CHARS = 10_000  # the engine scores at most this much of a text; longer is refused, not cut silently
MAX_ITEMS = 1_000  # texts per /score, items per /news
DEFAULT_HALF_LIFE = "3D"  # as the embedded wiring (alphaloop run/backtest --news)
# Tickers, FX pairs (EUR/USD), Yahoo-style (^GSPC, EURUSD=X, BTC-USD), betting markets (race:123:7).
INSTRUMENT_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9._:/=^@+\-]{0,63}$"
# Timestamps pandas can hold in nanoseconds (the engine's unit).
_MIN_TIME, _MAX_TIME = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")

Instrument = Annotated[str, StringConstraints(pattern=INSTRUMENT_PATTERN)]


def _scorable(text: str) -> str:
    # The schema's pattern says "a non-space character"; Python's idea of space is wider (\x1c..\x1f),
    # and a lone surrogate could be read but never written back as UTF-8.
    if not text.strip():
        raise ValueError("empty or whitespace-only text cannot be scored")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (lone surrogate)") from None
    return text


# A text must carry something to score: at least one non-space character.
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=r"\S"),
                 AfterValidator(_scorable)]
ItemId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


# ---------------------------------------------------------------------------------------------- models


class ScoreRequest(BaseModel):
    """Exactly one of ``text`` and ``texts``."""

    model_config = ConfigDict(extra="forbid")
    text: Text | None = None
    texts: list[Text] | None = Field(None, min_length=1, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _one_of(self) -> ScoreRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of `text` (a string) or `texts` (a list of strings)")
        return self


class Score(BaseModel):
    score: float = Field(ge=-1.0, le=1.0)
    label: str
    confidence: float = Field(ge=0.0, le=1.0)
    source: str


class ScoreResponse(BaseModel):
    results: list[Score]
    backend: str


class NewsItem(BaseModel):
    """One headline or post about an instrument at a time (ISO 8601; no zone means UTC)."""

    model_config = ConfigDict(extra="forbid")
    id: ItemId | None = None
    instrument: Instrument
    time: datetime
    text: Text

    @field_validator("time", mode="before")
    @classmethod
    def _iso_only(cls, v: Any) -> Any:
        # pydantic would read a number as Unix seconds; the rest of alphaloop says ns. Refuse the guess.
        if not isinstance(v, str | datetime):
            raise ValueError("expected an ISO 8601 time string, e.g. 2024-05-01T14:30:00Z")
        return v

    @field_validator("time")
    @classmethod
    def _in_range(cls, v: datetime) -> datetime:
        ts = _utc(pd.Timestamp(v)) if _MIN_TIME.year < v.year < _MAX_TIME.year else None
        if ts is None:
            raise ValueError(f"time must lie between {_MIN_TIME.year + 1} and {_MAX_TIME.year - 1}")
        return ts.to_pydatetime()


class NewsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[NewsItem] = Field(min_length=1, max_length=MAX_ITEMS)


class NewsAccepted(BaseModel):
    accepted: int
    duplicates: int


class StoredItem(BaseModel):
    id: str
    time: datetime
    text: str
    score: float
    label: str
    confidence: float


class NewsList(BaseModel):
    instrument: str
    total: int
    items: list[StoredItem]


class InstrumentSentiment(BaseModel):
    instrument: str
    at: datetime | None
    score: float = Field(ge=-1.0, le=1.0)
    confidence: float = Field(ge=0.0, le=1.0)
    label: str
    source: str
    readings: int = Field(description="news items stored through this service at or before `at`")


# ---------------------------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class _Stored:
    id: str
    time_ns: int
    text: str
    score: float
    label: str
    confidence: float


class NewsBook:
    """The engine plus the items behind its readings, deduplicated by id; one lock so that a batch
    is ingested whole or not at all, and two concurrent resends of one item store it once."""

    def __init__(self, engine: SentimentEngine):
        self.engine = engine
        self._items: dict[str, list[_Stored]] = {}
        self._times: dict[str, list[int]] = {}  # per instrument, sorted: "how many at or before t" by bisection
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def ingest(self, items: Sequence[NewsItem]) -> tuple[int, int]:
        """(accepted, duplicates). Scores every new text before storing any reading."""
        with self._lock:
            fresh: dict[str, NewsItem] = {}
            for item in items:
                key = item.id or _content_id(item.instrument, item.time, item.text)
                if key not in self._ids and key not in fresh:
                    fresh[key] = item
            t0 = time.perf_counter()
            scores = self.engine.score_many([i.text for i in fresh.values()]) if fresh else []
            metrics.PREDICTION_SECONDS.labels(SERVICE, self.engine.backend.name).observe(time.perf_counter() - t0)
            for (key, item), s in zip(fresh.items(), scores):
                t = _ns(item.time)
                self.engine.add_reading(item.instrument, t, s)
                self._items.setdefault(item.instrument, []).append(
                    _Stored(key, t, item.text, s.score, s.label, s.confidence))
                bisect.insort(self._times.setdefault(item.instrument, []), t)
                self._ids.add(key)
        return len(fresh), len(items) - len(fresh)

    def items(self, instrument: str, limit: int) -> tuple[int, list[_Stored]]:
        with self._lock:
            stored = list(self._items.get(instrument, ()))
        stored.sort(key=lambda s: s.time_ns, reverse=True)
        return len(stored), stored[:limit]

    def count(self, instrument: str, at_ns: int | None = None) -> int:
        """Items stored for ``instrument`` (at or before ``at_ns`` when given)."""
        with self._lock:
            times = self._times.get(instrument, [])
            return len(times) if at_ns is None else bisect.bisect_right(times, at_ns)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {k: len(v) for k, v in sorted(self._items.items())}


def load_news_csv(path: Path) -> list[NewsItem]:
    """News items from a CSV (columns time, instrument, text; optional id), checked row by row with
    the same rules as ``POST /news``: a bad row is a :class:`DataError` naming the line and field."""
    from pydantic import ValidationError

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read news CSV: {e}", source=str(path)) from e
    missing = {"time", "instrument", "text"} - set(frame.columns)
    if missing:
        raise DataError(f"news needs columns time, instrument, text; missing {', '.join(sorted(missing))}",
                        source=str(path))
    columns = [c for c in ("id", "instrument", "time", "text") if c in frame.columns]
    out = []
    for line, row in enumerate(frame[columns].to_dict("records"), start=2):
        if row.get("id") == "":
            row.pop("id")
        try:
            out.append(NewsItem.model_validate(row))
        except ValidationError as e:
            err = e.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else None
            raise DataError(err["msg"], source=str(path), line=line, field=field) from None
    return out


# ---------------------------------------------------------------------------------------------- app


def build_app(settings: Any, *, engine: SentimentEngine | None = None, half_life: str = DEFAULT_HALF_LIFE,
              news: Path | Iterable[NewsItem] | None = None) -> FastAPI:
    """The sentiment service. ``engine``: an engine to serve (default: the finance VADER backend
    with ``half_life``); ``news``: a CSV path or items to ingest before serving."""
    engine = engine if engine is not None else SentimentEngine(half_life=half_life)
    book = NewsBook(engine)
    if news is not None:
        items = load_news_csv(Path(news)) if isinstance(news, str | Path) else list(news)
        if items:
            book.ingest(items)
    probe = "shares rise after earnings beat"

    def engine_check() -> dict[str, Any]:
        s = engine.score(probe)  # cached after the first time: cheap, and proves the backend answers
        return {"ok": -1.0 <= s.score <= 1.0, "backend": engine.backend.name, "instruments": len(engine.instruments())}

    cache_seen = {"hit": 0, "miss": 0}
    cache_lock = threading.Lock()

    def export_cache() -> None:
        """Move the engine's cache counters into the shared CACHE family (by what grew since last time)."""
        with cache_lock:
            c = engine.cache_stats
            for result, now in (("hit", c.hits), ("miss", c.misses)):
                if now > cache_seen[result]:
                    metrics.CACHE.labels(SERVICE, result).inc(now - cache_seen[result])
                cache_seen[result] = now

    app = make_app(SERVICE, title="alphaloop sentiment engine",
                   description="Score market text, per-instrument decayed sentiment, news ingest.",
                   checks={"engine": engine_check}, max_body_bytes=settings.max_body_bytes)
    app.state.book = book
    auth = [Depends(bearer_auth(settings.service_token))]

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> Any:
        metrics.ERRORS.labels(SERVICE, "validation").inc()
        return await request_validation_exception_handler(request, e)

    @app.post("/score", response_model=ScoreResponse, tags=["sentiment"], summary="Score one text or many")
    def score(body: ScoreRequest) -> ScoreResponse:
        texts = [body.text] if body.text is not None else list(body.texts or ())
        t0 = time.perf_counter()
        scored = engine.score_many(texts)
        metrics.PREDICTION_SECONDS.labels(SERVICE, engine.backend.name).observe(time.perf_counter() - t0)
        export_cache()
        return ScoreResponse(results=[Score(score=s.score, label=s.label, confidence=s.confidence, source=s.source)
                                      for s in scored], backend=engine.backend.name)

    @app.get("/sentiment/{instrument:path}", response_model=InstrumentSentiment, tags=["sentiment"],
             summary="Decayed sentiment on an instrument from the news published at or before `at`")
    def instrument_sentiment(
            instrument: Annotated[str, PathParam(pattern=INSTRUMENT_PATTERN)],
            at: Annotated[str | None, Query(max_length=64, description=(
                "ISO 8601 time (no zone = UTC) or integer UTC nanoseconds; absent: the latest reading"))] = None,
    ) -> InstrumentSentiment:
        at_ts = None if at is None else _parse_at(at)
        s = engine.instrument_sentiment(instrument, at=None if at_ts is None else at_ts.value)
        n = book.count(instrument, None if at_ts is None else at_ts.value)
        return InstrumentSentiment(instrument=instrument, at=None if at_ts is None else at_ts.to_pydatetime(),
                                   score=s.score, confidence=s.confidence, label=s.label, source=s.source,
                                   readings=n)

    @app.post("/news", response_model=NewsAccepted, dependencies=auth, tags=["news"],
              summary="Ingest news items (all or none; resending an item is harmless)")
    def post_news(body: NewsRequest) -> NewsAccepted:
        accepted, duplicates = book.ingest(body.items)
        export_cache()
        metrics.MESSAGES.labels(SERVICE, "news").inc(accepted)
        if duplicates:
            metrics.MESSAGES.labels(SERVICE, "news_duplicate").inc(duplicates)
        return NewsAccepted(accepted=accepted, duplicates=duplicates)

    @app.get("/news/{instrument:path}", response_model=NewsList, tags=["news"], summary="Stored news, newest first")
    def get_news(instrument: Annotated[str, PathParam(pattern=INSTRUMENT_PATTERN)],
                 limit: Annotated[int, Query(ge=1, le=MAX_ITEMS)] = 100) -> NewsList:
        total, stored = book.items(instrument, limit)
        return NewsList(instrument=instrument, total=total, items=[
            StoredItem(id=s.id, time=pd.Timestamp(s.time_ns, tz="UTC").to_pydatetime(), text=s.text, score=s.score,
                       label=s.label, confidence=s.confidence) for s in stored])

    @app.get("/stats", tags=["health"], summary="Score cache counters and stored news per instrument")
    def stats() -> dict[str, Any]:
        c = engine.cache_stats
        return {"backend": engine.backend.name, "half_life": str(engine.half_life),
                "cache": {"hits": c.hits, "misses": c.misses, "evictions": c.evictions, "size": c.size,
                          "maxsize": c.maxsize, "hit_rate": c.hit_rate},
                "news": book.counts()}

    return app


def _parse_at(at: str) -> pd.Timestamp:
    """``at`` as a UTC timestamp; a 422 naming ``at`` when it is neither ISO 8601 nor integer ns."""
    from fastapi.exceptions import RequestValidationError

    text = at.strip()
    try:
        ts = pd.Timestamp(int(text), tz="UTC") if text.lstrip("-").isdigit() else _utc(pd.Timestamp(text))
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime) as e:
        ts, why = None, str(e)
    else:
        why = "not a time"
    if ts is None or pd.isna(ts):
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "at"), "input": at,
                                       "msg": f"expected an ISO 8601 time or integer UTC nanoseconds ({why})"}])
    return ts


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def _ns(t: datetime) -> int:
    return int(_utc(pd.Timestamp(t)).as_unit("ns").value)


def _content_id(instrument: str, t: datetime, text: str) -> str:
    digest = hashlib.sha256(f"{instrument}\x00{_ns(t)}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest[:32]}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m alphaloop.services.sentiment``: serve until SIGTERM/SIGINT."""
    import argparse
    import signal

    from alphaloop.core.config import load_settings
    from alphaloop.core.errors import AlphaloopError
    from alphaloop.services.logs import configure_logging
    from alphaloop.services.serving import serve_app
    from alphaloop.services.topology import SERVICES

    parser = argparse.ArgumentParser(prog="python -m alphaloop.services.sentiment", description=__doc__.split("\n")[0])
    parser.add_argument("--host", help="address to bind (default: ALPHALOOP_SERVICE_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=SERVICES[SERVICE].http_port)
    parser.add_argument("--news", type=Path, help="CSV of news (time, instrument, text[, id]) to ingest at start")
    parser.add_argument("--half-life", default=DEFAULT_HALF_LIFE, help="decay of a headline's weight (pandas duration)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(SERVICE, settings.log_level)
        app = build_app(settings, half_life=args.half_life, news=args.news)
    except (AlphaloopError, ValueError) as e:
        import sys

        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    # uvicorn re-raises the SIGTERM/SIGINT it handled once the app has shut down; by then the stop
    # was clean, so the re-raised signal must not kill the process (exit 0, as `alphaloop serve`).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    serve_app(app, args.host or settings.service_host, args.port, log_level=settings.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
