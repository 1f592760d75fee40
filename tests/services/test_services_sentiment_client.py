"""``RemoteSentiment`` against the real sentiment service in its own process: the same answers as
the embedded engine, neutral with the reason while the service is down, real answers once it is
back; retries on 5xx and connect errors only, against a real server that fails on purpose."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
from fastapi import FastAPI, Response
from service_test_helpers import HEADLINES_CSV, NEWS_CSV, ProcessServer, ThreadServer, free_port

from alphaloop.backtest import run_backtest
from alphaloop.cli.wiring import load_news
from alphaloop.core.config import load_settings
from alphaloop.core.errors import ConfigError
from alphaloop.data import load_bars
from alphaloop.execution import BrokerConfig
from alphaloop.ml.errors import InferenceError, ServiceUnavailableError
from alphaloop.ml.sentiment import SentimentEngine
from alphaloop.services.ml.breaker import CLOSED, OPEN, CircuitBreaker
from alphaloop.services.sentiment_client import UNAVAILABLE, RemoteSentiment
from alphaloop.strategy import load_strategy
from alphaloop.strategy.services import Services

TOKEN = "client-test-token"
SAMPLES = NEWS_CSV.parent
TIMES = (pd.Timestamp("2018-07-01T00:00:00Z"), pd.Timestamp("2019-03-20T10:00:00Z"), pd.Timestamp("2020-06-01"))


@pytest.fixture(scope="module")
def embedded() -> SentimentEngine:
    """The engine `alphaloop run --news` builds in process: the reference the remote one must match."""
    engine = SentimentEngine(half_life="3D")
    load_news(engine, NEWS_CSV)
    return engine


def _service(port: int | None = None) -> ProcessServer:
    return ProcessServer("alphaloop.services.sentiment", "--news", str(NEWS_CSV), port=port,
                         env={"ALPHALOOP_SERVICE_TOKEN": TOKEN, "ALPHALOOP_HOME": "/tmp/alphaloop-sentiment-client"})


def test_remote_answers_equal_the_embedded_engine(embedded):
    with _service() as server, RemoteSentiment(server.url, token=TOKEN) as client:
        for instrument in ("SYNTH_A", "SYNTH_B", "SYNTH_C"):
            for at in TIMES:
                # The strategy hands over its clock's time in integer ns; timestamps work as well.
                for given in (at.value, at, at.tz_localize(None)):
                    assert client.instrument_sentiment(instrument, at=given) == embedded.instrument_sentiment(
                        instrument, at=at)
            assert client.instrument_sentiment(instrument) == embedded.instrument_sentiment(instrument)
        texts = pd.read_csv(HEADLINES_CSV)["text"].tolist()[:40]
        assert client.score_many(texts) == embedded.score_many(texts)

        item = {"id": "late-1", "instrument": "SYNTH_A", "time": pd.Timestamp("2031-01-06T09:00:00Z"),
                "text": "SYNTH_A wins a large government contract"}
        assert client.ingest([item]) == {"accepted": 1, "duplicates": 0}
        assert client.ingest([item]) == {"accepted": 0, "duplicates": 1}
        embedded_copy = SentimentEngine(half_life="3D")
        load_news(embedded_copy, NEWS_CSV)
        embedded_copy.ingest("SYNTH_A", item["time"], item["text"])
        assert client.instrument_sentiment("SYNTH_A") == embedded_copy.instrument_sentiment("SYNTH_A")
        assert client.news("SYNTH_A", limit=1)["items"][0]["id"] == "late-1"
        assert client.health()["ok"] is True
        stats = client.stats()
        assert stats["fallbacks"] == 0 and stats["retries"] == 0 and stats["breaker"]["state"] == CLOSED


def test_service_down_gives_neutral_with_the_reason_and_back_gives_real_answers(embedded):
    port = free_port()
    breaker = CircuitBreaker("sentiment", failure_threshold=2, reset_timeout_s=0.3)
    at = TIMES[1]
    want = embedded.instrument_sentiment("SYNTH_A", at=at)
    server = _service(port).start()
    with RemoteSentiment(server.url, breaker=breaker, attempts=2, backoff_s=0.01) as client:
        assert client.instrument_sentiment("SYNTH_A", at=at.value) == want
        code, log = server.stop()
        assert code == 0 and "Application shutdown complete" in log  # SIGTERM: a clean shutdown

        down = client.instrument_sentiment("SYNTH_A", at=at.value)
        assert (down.score, down.confidence, down.label) == (0.0, 0.0, "neutral")
        assert down.source.startswith(f"{UNAVAILABLE}:") and "ConnectError" in down.source
        assert client.stats()["retries"] == 1  # connect errors are retried (attempts=2)
        client.instrument_sentiment("SYNTH_A", at=at.value)
        assert breaker.state == OPEN
        # Open: refused at once, without trying the network again.
        retries = client.stats()["retries"]
        fast = client.instrument_sentiment("SYNTH_A", at=at.value)
        assert "circuit open" in fast.source and client.stats()["retries"] == retries
        assert client.health()["ok"] is False
        # In the strategy service's readiness: degraded, still ready (it decides without sentiment)...
        assert client.as_check()() | {"breaker": None, "error": None} == {
            "ok": True, "degraded": True, "url": server.url, "breaker": None, "error": None}
        assert client.as_check(required=True)()["ok"] is False  # ...unless told sentiment is required
        with pytest.raises(ServiceUnavailableError):
            client.score("anything")  # scoring has no neutral answer: it says the engine is down

        with _service(port):
            # The breaker lets a trial through after reset_timeout_s; then it closes again.
            threading.Event().wait(0.35)
            assert client.instrument_sentiment("SYNTH_A", at=at.value) == want
            assert breaker.state == CLOSED
            assert client.stats()["fallbacks"] == 3 and client.last_error is None
            check = client.as_check(required=True)()
            assert check["ok"] is True and check["degraded"] is False and check["engine"]["engine"]["ok"] is True

    strict = RemoteSentiment(f"http://127.0.0.1:{free_port()}", neutral_when_down=False, attempts=1)
    with strict, pytest.raises(ServiceUnavailableError, match="ConnectError"):
        strict.instrument_sentiment("SYNTH_A")


def test_refused_requests_raise_the_engines_reason_and_do_not_trip_the_breaker():
    with _service() as server, RemoteSentiment(server.url, attempts=3) as client:
        for _ in range(5):
            with pytest.raises(InferenceError, match="422") as e:
                client.instrument_sentiment("has space")
            assert "instrument" in str(e.value)
        with pytest.raises(InferenceError, match="401"):
            client.ingest([{"instrument": "X", "time": "2024-01-01", "text": "no token"}])
        assert client.breaker.state == CLOSED and client.stats()["retries"] == 0
        assert client.stats()["refused"] == 6


class _Flaky:
    """A real HTTP server that answers 503 for the first ``failures`` requests of each path."""

    def __init__(self, failures: int):
        self.failures, self.seen = failures, {}
        self.app = FastAPI()

        @self.app.get("/sentiment/{instrument}")
        def sentiment(instrument: str, response: Response) -> dict:
            n = self.seen[instrument] = self.seen.get(instrument, 0) + 1
            if n <= self.failures:
                response.status_code = 503
                return {"detail": "warming up"}
            return {"instrument": instrument, "score": 0.5, "confidence": 0.5, "label": "positive", "source": "flaky"}


def test_5xx_is_retried_with_backoff_and_4xx_is_not():
    flaky = _Flaky(failures=2)
    with ThreadServer(flaky.app) as server:
        with RemoteSentiment(server.url, attempts=3, backoff_s=0.01) as client:
            s = client.instrument_sentiment("A")
            assert (s.score, s.source) == (0.5, "flaky") and flaky.seen["A"] == 3
            assert client.stats()["retries"] == 2
        with RemoteSentiment(server.url, attempts=2, backoff_s=0.01) as client:
            s = client.instrument_sentiment("B")  # two 503s and only two attempts: down
            assert s.confidence == 0.0 and "HTTP 503" in s.source and flaky.seen["B"] == 2
            with pytest.raises(InferenceError, match="404"):
                client.news("B")  # no such endpoint here: a 4xx, tried once
            assert client.stats()["retries"] == 1


def test_configuration(tmp_path):
    settings = load_settings(env={"ALPHALOOP_HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match="SENTIMENT_ENGINE_URL"):
        RemoteSentiment.from_settings(settings)
    settings = load_settings(env={"ALPHALOOP_HOME": str(tmp_path), "SENTIMENT_ENGINE_URL": "http://127.0.0.1:8002/",
                                  "ALPHALOOP_SERVICE_TOKEN": "t"})
    with RemoteSentiment.from_settings(settings) as client:
        assert client.url == "http://127.0.0.1:8002"
        assert client._http.headers["Authorization"] == "Bearer t"
    for bad in ("127.0.0.1:8002", "ftp://x", ""):
        with pytest.raises(ConfigError, match="http"):
            RemoteSentiment(bad)


def _decisions(services: Services) -> tuple[list[tuple], float]:
    bars = load_bars(SAMPLES / "SYNTH_A.csv")
    res = run_backtest(load_strategy("ml_multifactor", {"on_bars": True}), bars, BrokerConfig(initial_cash=100_000.0),
                       services=services)
    rows = []
    for d in res.decisions:
        f = {x.name: x for x in d.factors}["sentiment"]
        rows.append((d.instrument, d.bar, d.score, d.action, d.order_size, f.value, f.missing, d.sentiment_source))
    return rows, res.final_equity


def test_ml_multifactor_decides_the_same_with_the_remote_engine_and_as_without_news_when_it_is_down(embedded):
    local, local_equity = _decisions(Services(sentiment=embedded))
    assert sum(1 for r in local if not r[6]) > 20  # the news does move decisions
    with _service() as server, RemoteSentiment(server.url) as client:
        remote, remote_equity = _decisions(Services(sentiment=client))
    assert remote == local and remote_equity == local_equity

    blind, blind_equity = _decisions(Services(sentiment=None))
    with RemoteSentiment(f"http://127.0.0.1:{free_port()}", attempts=1) as dead:
        down, down_equity = _decisions(Services(sentiment=dead))
        assert dead.stats()["fallbacks"] == len(down)
    # Down: the sentiment factor is missing everywhere (its weight goes to the others), so every
    # decision is the one made with no sentiment source at all; the source says why.
    assert [r[:5] for r in down] == [r[:5] for r in blind] and down_equity == blind_equity
    assert all(r[6] and r[7].startswith(f"{UNAVAILABLE}:") for r in down)
