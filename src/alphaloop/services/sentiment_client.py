"""``RemoteSentiment``: the strategy's sentiment source when the sentiment engine runs as a service.

It implements :class:`~alphaloop.strategy.services.SentimentSource` over HTTP (one pooled httpx
client, so connections are reused), with a connect and a read timeout, retries with backoff on
connect errors and 5xx only (a 4xx is the caller's mistake and would fail again), and a circuit
breaker so a dead engine costs a decision nothing once it is known to be dead.

When the engine cannot be reached, :meth:`RemoteSentiment.instrument_sentiment` answers a neutral
reading with confidence 0 whose ``source`` says why (``"unavailable: ..."``). That is what the
strategy already does with an instrument that has no recent news: ``ml_multifactor`` treats a
sentiment below its minimum confidence as a missing factor and gives its weight to the others,
and the decision keeps the source, so "why did it trade without sentiment?" has its answer. The
engine coming back is picked up by the breaker's half-open trial, without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd

from alphaloop.core.errors import ConfigError
from alphaloop.core.predictions import Sentiment
from alphaloop.ml.errors import InferenceError, ServiceUnavailableError
from alphaloop.services import metrics
from alphaloop.services.ml.breaker import CircuitBreaker  # the ML clients' breaker: one design for both
from alphaloop.services.ml.errors import CircuitOpenError
from alphaloop.services.resilience import retry

log = logging.getLogger(__name__)

UNAVAILABLE = "unavailable"


class _ServerError(ServiceUnavailableError):
    """A 5xx from the engine: worth retrying, and a failure for the breaker."""


class RemoteSentiment:
    """A client of the sentiment service (:mod:`alphaloop.services.sentiment`).

    ``url``: the service's base URL (``SENTIMENT_ENGINE_URL``); ``token``: bearer token for
    ``POST /news``; ``timeout_s``/``connect_timeout_s``: per attempt; ``attempts``: tries per call
    (connect errors and 5xx only); ``breaker``: shared or own; ``neutral_when_down``: answer a
    neutral reading with the reason (default) instead of raising :class:`ServiceUnavailableError`.
    ``transport`` is handed to httpx (tests, proxies)."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 1.0, connect_timeout_s: float = 0.25,
                 attempts: int = 3, backoff_s: float = 0.05, breaker: CircuitBreaker | None = None,
                 neutral_when_down: bool = True, transport: httpx.BaseTransport | None = None):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"SENTIMENT_ENGINE_URL must be an http(s) URL, got {url!r}")
        if attempts < 1:
            raise ConfigError(f"attempts must be >= 1, got {attempts}")
        self.url = url.rstrip("/")
        self.attempts, self.backoff_s, self.neutral_when_down = attempts, backoff_s, neutral_when_down
        self.breaker = breaker or CircuitBreaker("sentiment", failure_threshold=3, reset_timeout_s=2.0)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, transport=transport,
                                  timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
                                  limits=httpx.Limits(max_connections=16, max_keepalive_connections=8))
        self._lock = threading.Lock()
        self._stats = {"calls": 0, "ok": 0, "retries": 0, "fallbacks": 0, "refused": 0}
        self.last_error: str | None = None

    @classmethod
    def from_settings(cls, settings: Any, **options: Any) -> RemoteSentiment:
        """A client of ``settings.sentiment_engine_url`` (with ``settings.service_token``)."""
        if not settings.sentiment_engine_url:
            raise ConfigError("SENTIMENT_ENGINE_URL is not set: no remote sentiment engine to use")
        options.setdefault("token", settings.service_token)
        return cls(settings.sentiment_engine_url, **options)

    # ------------------------------------------------------------------ SentimentSource

    def instrument_sentiment(self, instrument: str, at: Any = None) -> Sentiment:
        """The engine's decayed sentiment on ``instrument`` from news at or before ``at`` (UTC ns,
        a timestamp, or None for the latest); neutral with the reason when the engine is down."""
        params = {} if at is None else {"at": str(_to_ns(at))}
        try:
            body = self._request("GET", f"/sentiment/{quote(instrument, safe='')}", params=params)
        except ServiceUnavailableError as e:
            if not self.neutral_when_down:
                raise
            self._count("fallbacks")
            return Sentiment(0.0, 0.0, "neutral", f"{UNAVAILABLE}: {e}")
        return Sentiment(float(body["score"]), float(body["confidence"]), str(body["label"]), str(body["source"]))

    # ------------------------------------------------------------------ the rest of the API

    def score(self, text: str) -> Sentiment:
        return self.score_many([text])[0]

    def score_many(self, texts: Sequence[str]) -> list[Sentiment]:
        """Scores in order; raises :class:`ServiceUnavailableError` when the engine is down and
        :class:`InferenceError` (with the engine's reason) for texts it refuses."""
        if isinstance(texts, str):
            raise InferenceError("texts: expected a sequence of strings, got a single string")
        body = self._request("POST", "/score", json={"texts": list(texts)})
        return [Sentiment(float(r["score"]), float(r["confidence"]), str(r["label"]), str(r["source"]))
                for r in body["results"]]

    def ingest(self, items: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """Send news items (``instrument``, ``time``, ``text``, optional ``id``); ``{"accepted",
        "duplicates"}``. Resending is harmless (the engine deduplicates), so it is retried too."""
        payload = [{**item, "time": _iso(item["time"])} if "time" in item else dict(item) for item in items]
        return self._request("POST", "/news", json={"items": payload})

    def news(self, instrument: str, limit: int = 100) -> dict[str, Any]:
        return self._request("GET", f"/news/{quote(instrument, safe='')}", params={"limit": limit})

    def health(self) -> dict[str, Any]:
        """The engine's readiness as ``{"ok": bool, ...}``; never raises (a worker check)."""
        try:
            r = self._http.get("/health")
            out = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            return {"ok": r.status_code == 200, "status": r.status_code, "breaker": self.breaker.snapshot(),
                    "engine": out.get("checks")}
        except (httpx.HTTPError, ValueError) as e:
            return {"ok": False, "error": f"{type(e).__name__}: {e}", "breaker": self.breaker.snapshot()}

    def as_check(self, *, required: bool = False) -> Callable[[], dict[str, Any]]:
        """A readiness check for the service that uses this client (``make_app(checks=...)``). Not
        ``required`` (the default): the strategy decides without sentiment while the engine is down,
        so the check stays ok and reports ``degraded``; required: ok only while the engine is."""
        def check() -> dict[str, Any]:
            h = self.health()
            return {**h, "ok": bool(h["ok"]) or not required, "degraded": not h["ok"], "url": self.url}
        return check

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**self._stats, "last_error": self.last_error, "breaker": self.breaker.snapshot()}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteSentiment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteSentiment({self.url!r}, breaker={self.breaker.state})"

    # ------------------------------------------------------------------ transport

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        self._count("calls")

        def once() -> Any:
            r = self._http.request(method, path, **kwargs)
            if r.status_code >= 500:
                raise _ServerError(f"{method} {path}: HTTP {r.status_code} {r.text[:200]}")
            if r.status_code >= 400:
                raise InferenceError(f"sentiment engine refused {method} {path}: HTTP {r.status_code} "
                                     f"{_detail(r)}")
            return r.json()

        def retryable(e: BaseException) -> bool:
            return isinstance(e, _ServerError | httpx.ConnectError | httpx.ConnectTimeout
                              | httpx.RemoteProtocolError)  # the last: a pooled connection the server closed

        def attempt() -> Any:
            return retry(once, attempts=self.attempts, retryable=retryable, base_delay_s=self.backoff_s,
                         on_retry=lambda n, e: self._count("retries"))

        def is_failure(e: BaseException) -> bool:
            return not isinstance(e, InferenceError)  # a refused request says the engine is up

        try:
            out = self.breaker.call(attempt, is_failure=is_failure)
        except CircuitOpenError as e:
            self._failed(e)
            raise
        except (httpx.HTTPError, _ServerError) as e:
            self._failed(e)
            raise ServiceUnavailableError(f"sentiment engine at {self.url}: {type(e).__name__}: {e}") from e
        except InferenceError:
            self._count("refused")
            raise
        except ValueError as e:  # a body that is not JSON: the engine is not what we think it is
            self._failed(e)
            raise ServiceUnavailableError(f"sentiment engine at {self.url}: unreadable answer ({e})") from e
        self._count("ok")
        if self.last_error is not None:
            log.info("sentiment engine at %s answers again", self.url)
            self.last_error = None
        return out

    def _failed(self, e: BaseException) -> None:
        if self.last_error is None:  # log the change, not every refused call
            log.warning("sentiment engine at %s unavailable: %s", self.url, e)
        self.last_error = f"{type(e).__name__}: {e}"
        metrics.ERRORS.labels("sentiment-client", type(e).__name__).inc()

    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1


def _detail(r: httpx.Response) -> str:
    try:
        return str(r.json().get("detail"))[:500]
    except ValueError:
        return r.text[:200]


def _to_ns(at: Any) -> int:
    """UTC nanoseconds (an int is already ns, as the runners hand it; naive is UTC)."""
    if type(at) is int:
        return at
    ts = pd.Timestamp(at)
    if pd.isna(ts):
        raise InferenceError(f"at: a time is required, got {at!r}")
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def _iso(t: Any) -> str:
    ts = pd.Timestamp(t) if type(t) is not int else pd.Timestamp(t, tz="UTC")
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return ts.isoformat()
