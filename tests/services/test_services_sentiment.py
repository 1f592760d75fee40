"""The sentiment service on a real uvicorn server: its scores are the in-process engine's, news
ingest is all-or-nothing and idempotent, the decayed sentiment follows the closed form, and bad
input gets 4xx naming the field."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pandas as pd
import pytest
from service_test_helpers import HEADLINES_CSV, NEWS_CSV, ThreadServer, metric_value

from alphaloop.core.config import load_settings
from alphaloop.ml.sentiment import SentimentEngine
from alphaloop.services.sentiment import MAX_ITEMS, MAX_TEXT_CHARS, build_app, load_news_csv

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _settings(tmp_path, **env):
    return load_settings(env={"ALPHALOOP_HOME": str(tmp_path), **env})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("sentiment"), ALPHALOOP_SERVICE_TOKEN=TOKEN,
                         ALPHALOOP_MAX_BODY_BYTES="262144")
    with ThreadServer(build_app(settings)) as s, httpx.Client(base_url=s.url, timeout=10) as client:
        yield client


def _news_items() -> list[dict]:
    frame = pd.read_csv(NEWS_CSV, dtype=str)
    return [{"id": f"sample-{i}", "instrument": r.instrument, "time": r.time, "text": r.text}
            for i, r in enumerate(frame.itertuples(index=False))]


def test_scores_equal_the_in_process_engine(server):
    texts = pd.read_csv(HEADLINES_CSV)["text"].tolist()
    engine = SentimentEngine()
    expected = engine.score_many(texts)
    r = server.post("/score", json={"texts": texts})
    assert r.status_code == 200, r.text
    got = r.json()["results"]
    assert len(got) == len(texts)
    # JSON floats round-trip exactly, so the same engine must give the very same numbers.
    assert [(g["score"], g["confidence"], g["label"], g["source"]) for g in got] == [
        (e.score, e.confidence, e.label, e.source) for e in expected]
    one = server.post("/score", json={"text": texts[0]}).json()["results"]
    assert one == got[:1]
    assert {g["label"] for g in got} == {"positive", "negative", "neutral"}


def test_ingest_then_query_matches_the_engine_and_resending_changes_nothing(server):
    items = _news_items()
    r = server.post("/news", json={"items": items}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": len(items), "duplicates": 0}

    reference = SentimentEngine(half_life="3D")  # the service's default decay, as the embedded wiring's
    for item in items:
        reference.ingest(item["instrument"], pd.Timestamp(item["time"]), item["text"])
    for instrument in ("SYNTH_A", "SYNTH_B", "SYNTH_C"):
        for at in ("2018-07-01T00:00:00Z", "2019-03-20T10:00:00Z", None):
            params = {} if at is None else {"at": at}
            body = server.get(f"/sentiment/{instrument}", params=params).json()
            want = reference.instrument_sentiment(instrument, at=None if at is None else pd.Timestamp(at))
            # The same engine over the same readings: the very same numbers.
            assert (body["score"], body["confidence"], body["label"]) == (want.score, want.confidence, want.label)
    # The same time as integer nanoseconds (what the strategy's clock hands over).
    at = pd.Timestamp("2019-03-20T10:00:00Z")
    by_ns = server.get("/sentiment/SYNTH_A", params={"at": str(at.value)}).json()
    by_iso = server.get("/sentiment/SYNTH_A", params={"at": at.isoformat()}).json()
    assert by_ns["score"] == by_iso["score"] and by_ns["readings"] == by_iso["readings"]
    assert by_iso["readings"] == sum(1 for i in items if i["instrument"] == "SYNTH_A" and pd.Timestamp(i["time"]) <= at)

    before = server.get("/sentiment/SYNTH_A").json()
    again = server.post("/news", json={"items": items[:5]}, headers=AUTH)
    assert again.json() == {"accepted": 0, "duplicates": 5}
    assert server.get("/sentiment/SYNTH_A").json() == before

    listed = server.get("/news/SYNTH_A", params={"limit": 3}).json()
    n_a = sum(1 for i in items if i["instrument"] == "SYNTH_A")
    assert listed["total"] == n_a and len(listed["items"]) == 3
    times = [pd.Timestamp(i["time"]) for i in listed["items"]]
    assert times == sorted(times, reverse=True)
    newest = max((i for i in items if i["instrument"] == "SYNTH_A"), key=lambda i: pd.Timestamp(i["time"]))
    assert listed["items"][0]["id"] == newest["id"] and listed["items"][0]["text"] == newest["text"]


def test_decay_follows_the_closed_form(server):
    text = "FORMX beats estimates and raises full-year guidance"
    s = SentimentEngine().score(text)
    t0 = pd.Timestamp("2024-03-01T12:00:00Z")
    r = server.post("/news", json={"items": [{"instrument": "FORMX", "time": "2024-03-01T12:00:00Z", "text": text}]},
                    headers=AUTH)
    assert r.json() == {"accepted": 1, "duplicates": 0}
    # No id: the same instrument, time and text is the same item.
    r = server.post("/news", json={"items": [{"instrument": "FORMX", "time": "2024-03-01T13:00:00+01:00",
                                              "text": text}]}, headers=AUTH)
    assert r.json() == {"accepted": 0, "duplicates": 1}
    for days, weight in ((0, 1.0), (3, 0.5), (6, 0.25)):
        body = server.get("/sentiment/FORMX", params={"at": (t0 + pd.Timedelta(days=days)).isoformat()}).json()
        assert body["score"] == pytest.approx(s.score, rel=1e-12)
        assert body["confidence"] == pytest.approx(s.confidence * (1 - 0.5 ** weight), rel=1e-12)
    before = server.get("/sentiment/FORMX", params={"at": "2024-02-29T00:00:00Z"}).json()
    assert (before["score"], before["confidence"], before["label"], before["readings"]) == (0.0, 0.0, "neutral", 0)
    unknown = server.get("/sentiment/NEVER_SEEN").json()
    assert (unknown["confidence"], unknown["readings"]) == (0.0, 0)
    assert server.get("/news/NEVER_SEEN").json() == {"instrument": "NEVER_SEEN", "total": 0, "items": []}


def test_instrument_names_with_a_slash_work_raw_and_encoded(server):
    r = server.post("/news", json={"items": [{"instrument": "EUR/USD", "time": "2024-01-02T00:00:00Z",
                                              "text": "Euro surges after strong data"}]}, headers=AUTH)
    assert r.json()["accepted"] == 1
    raw = server.get("/sentiment/EUR/USD").json()
    encoded = server.get("/sentiment/EUR%2FUSD").json()
    assert raw == encoded and raw["instrument"] == "EUR/USD" and raw["readings"] == 1


def test_ingest_needs_the_token_when_one_is_configured(server, tmp_path):
    item = {"items": [{"instrument": "TOK", "time": "2024-01-01T00:00:00Z", "text": "TOK rallies"}]}
    assert server.post("/news", json=item).status_code == 401
    assert server.post("/news", json=item, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert server.get("/news/TOK").json()["total"] == 0  # nothing stored by a refused request
    assert server.post("/news", json=item, headers=AUTH).status_code == 200
    # Reads need no token; scoring changes no state either.
    assert server.post("/score", json={"text": "fine"}).status_code == 200
    # No token configured: open (the service binds to loopback by default).
    with ThreadServer(build_app(_settings(tmp_path))) as open_server:
        assert httpx.post(f"{open_server.url}/news", json=item).json() == {"accepted": 1, "duplicates": 0}


def test_oversized_bodies_are_refused_with_413_and_store_nothing(server):
    # (A streamed body over the limit is the body-limit middleware's test: test_services_http_app.py.)
    big = "x" * 300_000
    items = {"items": [{"instrument": "BIG", "time": "2024-01-01T00:00:00Z", "text": big}]}
    r = server.post("/news", json=items, headers=AUTH)
    assert r.status_code == 413 and "262144" in r.json()["detail"]
    assert server.get("/news/BIG").json()["total"] == 0


@pytest.mark.parametrize(("body", "loc"), [
    ({"items": [{"instrument": "OK", "time": "2024-01-01", "text": "fine"},
                {"instrument": "OK", "time": "yesterday", "text": "fine"}]}, ["body", "items", 1, "time"]),
    ({"items": [{"instrument": "OK", "time": 1704067200, "text": "fine"}]}, ["body", "items", 0, "time"]),
    ({"items": [{"instrument": "OK", "time": "1500-01-01T00:00:00Z", "text": "fine"}]}, ["body", "items", 0, "time"]),
    ({"items": [{"instrument": "OK", "time": "2024-01-01"}]}, ["body", "items", 0, "text"]),
    ({"items": [{"instrument": "OK", "time": "2024-01-01", "text": "   "}]}, ["body", "items", 0, "text"]),
    ({"items": [{"instrument": "OK", "time": "2024-01-01", "text": "\x1c\x1d"}]}, ["body", "items", 0, "text"]),
    ({"items": [{"instrument": "bad name", "time": "2024-01-01", "text": "fine"}]},
     ["body", "items", 0, "instrument"]),
    ({"items": [{"instrument": "OK", "time": "2024-01-01", "text": "fine", "extra": 1}]},
     ["body", "items", 0, "extra"]),
    ({"items": []}, ["body", "items"]),
    ({"items": [{"instrument": "OK", "time": "2024-01-01", "text": "y" * (MAX_TEXT_CHARS + 1)}]},
     ["body", "items", 0, "text"]),
    ({"items": [{"instrument": "OK", "time": "2024-01-01", "text": "z"}] * (MAX_ITEMS + 1)}, ["body", "items"]),
])
def test_bad_news_items_get_422_naming_the_field_and_nothing_is_stored(server, body, loc):
    before = server.get("/news/OK").json()["total"]
    r = server.post("/news", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert any(e["loc"] == loc for e in r.json()["detail"]), r.json()
    assert server.get("/news/OK").json()["total"] == before == 0


@pytest.mark.parametrize(("method", "path", "kwargs", "loc"), [
    ("post", "/score", {"json": {}}, ["body"]),
    ("post", "/score", {"json": {"text": "a", "texts": ["b"]}}, ["body"]),
    ("post", "/score", {"json": {"texts": ["ok", ""]}}, ["body", "texts", 1]),
    ("post", "/score", {"json": {"texts": "not a list"}}, ["body", "texts"]),
    ("post", "/score", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, ["body", 1]),
    ("get", "/sentiment/SYNTH_A", {"params": {"at": "not a time"}}, ["query", "at"]),
    ("get", "/sentiment/SYNTH_A", {"params": {"at": "9" * 30}}, ["query", "at"]),
    ("get", "/sentiment/has space", {}, ["path", "instrument"]),
    ("get", "/news/SYNTH_A", {"params": {"limit": 0}}, ["query", "limit"]),
])
def test_bad_requests_get_422_naming_the_field(server, method, path, kwargs, loc):
    r = getattr(server, method)(path, **kwargs)
    assert r.status_code == 422, r.text
    assert any(e["loc"] == loc for e in r.json()["detail"]), r.json()


def test_health_and_metrics(server):
    health = server.get("/health")
    assert health.status_code == 200
    assert health.json()["checks"]["engine"] == {"ok": True, "backend": "vader-finance",
                                                 "instruments": health.json()["checks"]["engine"]["instruments"]}
    assert server.get("/health/live").json()["status"] == "alive"
    assert server.get("/health/ready").status_code == 200

    before = server.get("/metrics").text
    items = [{"instrument": "MET", "time": f"2024-01-0{d}T00:00:00Z", "text": f"MET rises on day {d}"} for d in (1, 2, 3)]
    assert server.post("/news", json={"items": items}, headers=AUTH).json()["accepted"] == 3
    assert server.post("/news", json={"items": items[:1]}, headers=AUTH).json()["duplicates"] == 1
    assert server.post("/news", json={"items": [{"instrument": "MET"}]}, headers=AUTH).status_code == 422
    for _ in range(4):
        server.post("/score", json={"text": "shares jump"})
    after = server.get("/metrics").text

    def delta(name, **labels):
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("alphaloop_messages_total", service="sentiment", kind="news") == 3
    assert delta("alphaloop_messages_total", service="sentiment", kind="news_duplicate") == 1
    assert delta("alphaloop_errors_total", service="sentiment", type="validation") == 1
    assert delta("alphaloop_http_request_seconds_count", service="sentiment", route="/score", method="POST",
                 status="200") == 4
    assert delta("alphaloop_prediction_seconds_count", service="sentiment", path="vader-finance") >= 4
    assert delta("alphaloop_cache_requests_total", service="sentiment", result="hit") >= 3  # the same text 4 times
    assert delta("alphaloop_cache_requests_total", service="sentiment", result="miss") >= 3  # 3 new headlines
    stats = server.get("/stats").json()
    assert stats["news"]["MET"] == 3 and stats["cache"]["hits"] >= 3


def test_news_csv_at_start_is_checked_row_by_row(tmp_path):
    items = load_news_csv(NEWS_CSV)
    assert len(items) == len(pd.read_csv(NEWS_CSV))
    bad = tmp_path / "news.csv"
    bad.write_text("time,instrument,text\n2024-01-01,A,fine\nsoon,A,fine\n")
    proc = subprocess.run([sys.executable, "-m", "alphaloop.services.sentiment", "--news", str(bad), "--port", "1"],
                          capture_output=True, text=True, timeout=60,
                          env={"ALPHALOOP_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 4, proc.stderr
    assert "line 3" in proc.stderr and "field 'time'" in proc.stderr and str(bad) in proc.stderr


def test_concurrent_resends_store_each_item_once(server):
    from concurrent.futures import ThreadPoolExecutor

    items = [{"id": f"race-{i}", "instrument": "RACE", "time": f"2024-02-01T00:{i:02d}:00Z",
              "text": f"RACE shares rise {i}"} for i in range(50)]

    def send(_: int) -> dict:
        with httpx.Client(base_url=str(server.base_url), timeout=30) as c:
            return c.post("/news", json={"items": items}, headers=AUTH).json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    assert sum(a["accepted"] for a in answers) == 50 and sum(a["duplicates"] for a in answers) == 7 * 50
    assert server.get("/news/RACE", params={"limit": 1000}).json()["total"] == 50
    assert server.get("/sentiment/RACE").json()["readings"] == 50


def test_text_limits_are_inclusive(server):
    longest = "Acme beats estimates " + "z" * (MAX_TEXT_CHARS - 21)
    assert len(longest) == MAX_TEXT_CHARS
    r = server.post("/score", json={"texts": [longest] * 3})
    assert r.status_code == 200 and len(r.json()["results"]) == 3
    assert r.json()["results"][0]["score"] == SentimentEngine().score(longest).score
