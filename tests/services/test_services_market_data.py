"""The market data service as a real process (`alphaloop serve market-data`) on loopback: instruments,
bars by range and the latest quote answer with the file's own rows (read here with plain pandas),
bad ranges get a 4xx naming the parameter, the replay is paused/resumed under the bearer token and
puts every row on the run's bars stream in the real Redis."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest
import redis
from pipeline_helpers import (
    GOOG,
    REDIS_URL,
    Proc,
    delete_streams,
    free_port,
    get,
    new_run_id,
    redis_up,
    service_env,
    wait_for,
)

pytestmark = pytest.mark.skipif(not redis_up(), reason="no Redis server at 127.0.0.1:6379")
TOKEN = "md-token"
ROWS = pd.read_csv(GOOG, index_col=0)  # the independent reading of the file


@pytest.fixture(scope="module")
def market_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("market-data")
    run_id, port = new_run_id("md"), free_port()
    env = {**service_env(tmp / "home", f"sqlite:///{tmp / 'db.sqlite'}"), "ALPHALOOP_SERVICE_TOKEN": TOKEN}
    proc = Proc(["serve", "market-data", "--port", str(port), "--run-id", run_id, "--data", str(GOOG), "--paused"],
                env, tmp / "logs", "market-data")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("market-data /health", lambda: get(f"{url}/health").status_code == 200, procs=(proc,))
        yield url, run_id
    finally:
        proc.stop()
        delete_streams(run_id)


def _expected(rows: pd.DataFrame) -> list[tuple]:
    return [(pd.Timestamp(t, tz="UTC").isoformat(), r.Open, r.High, r.Low, r.Close, r.Volume)
            for t, r in zip(rows.index, rows.itertuples(), strict=True)]


def _got(bars: list[dict]) -> list[tuple]:
    return [(b["time"], b["open"], b["high"], b["low"], b["close"], b["volume"]) for b in bars]


def test_instruments_name_the_file_and_its_range(market_data):
    url, _ = market_data
    [inst] = get(f"{url}/instruments").json()
    assert inst["instrument"] == "GOOG_daily" and inst["bars"] == len(ROWS) == 2148
    assert inst["start"].startswith("2004-08-19") and inst["end"].startswith("2013-03-01")


def test_bars_by_range_are_the_file_rows_in_that_range(market_data):
    url, _ = market_data
    bars = get(f"{url}/bars/GOOG_daily", params={"start": "2005-01-01", "end": "2005-03-31"}).json()
    rows = ROWS.loc["2005-01-01":"2005-03-31"]
    assert len(bars) == len(rows) == 61
    assert _got(bars) == _expected(rows)
    assert _got(get(f"{url}/bars/GOOG_daily", params={"limit": 5}).json()) == _expected(ROWS.iloc[:5])
    end_only = get(f"{url}/bars/GOOG_daily", params={"start": "2013-02-27T00:00:00Z"}).json()
    assert _got(end_only) == _expected(ROWS.iloc[-3:])
    assert get(f"{url}/bars/GOOG_daily", params={"start": "2030-01-01"}).json() == []


@pytest.mark.parametrize(("params", "named"), [
    ({"start": "not-a-date"}, "'start'"),
    ({"end": "2005-13-45"}, "'end'"),
    ({"start": "2006-01-01", "end": "2005-01-01"}, "start must not be after end"),
])
def test_bad_ranges_get_a_422_naming_the_parameter(market_data, params, named):
    url, _ = market_data
    r = get(f"{url}/bars/GOOG_daily", params=params)
    assert r.status_code == 422 and named in r.json()["detail"]


def test_bad_limit_and_unknown_instrument_are_4xx(market_data):
    url, _ = market_data
    r = get(f"{url}/bars/GOOG_daily", params={"limit": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]
    r = get(f"{url}/bars/NOPE")
    assert r.status_code == 404 and "NOPE" in r.json()["detail"] and "GOOG_daily" in r.json()["detail"]
    assert get(f"{url}/quote/NOPE").status_code == 404


def test_replay_needs_the_token_and_publishes_every_row_then_quotes_the_last(market_data):
    url, run_id = market_data
    state = get(f"{url}/replay").json()
    assert state["paused"] and state["steps_published"] == 0
    assert get(f"{url}/quote/GOOG_daily").status_code == 404  # nothing published yet
    assert httpx.post(f"{url}/replay", json={"paused": False}, timeout=10).status_code == 401
    bad = httpx.post(f"{url}/replay", json={"speed": -1}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert bad.status_code == 422
    ok = httpx.post(f"{url}/replay", json={"paused": False}, headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=10)
    assert ok.status_code == 200 and ok.json()["paused"] is False
    wait_for("the replay to finish", lambda: get(f"{url}/replay").json()["finished"], timeout=60)
    quote = get(f"{url}/quote/GOOG_daily").json()
    last = ROWS.iloc[-1]
    assert quote["time"].startswith("2013-03-01") and quote["price"] == last.Close == quote["close"]
    r = redis.Redis.from_url(REDIS_URL)
    try:
        entries = r.xrange(f"alphaloop:{run_id}:bars")
    finally:
        r.close()
    kinds = [f[b"kind"] for _, f in entries]
    assert kinds.count(b"bar") == len(ROWS) and kinds[-1] == b"end"
    ids = [f[b"id"].decode() for _, f in entries]
    assert ids[:2] == [f"{run_id}:market-data:1", f"{run_id}:market-data:2"] and len(set(ids)) == len(ids)


def test_a_killed_replay_restarts_where_the_stream_ends(tmp_path):
    run_id, port = new_run_id("md-resume"), free_port()
    env = service_env(tmp_path / "home", f"sqlite:///{tmp_path / 'db.sqlite'}")
    args = ["serve", "market-data", "--port", str(port), "--run-id", run_id, "--data", str(GOOG), "--speed", "400"]
    url = f"http://127.0.0.1:{port}"
    first = Proc(args, env, tmp_path / "logs", "md-1")
    try:
        wait_for("300 steps", lambda: get(f"{url}/replay").json()["steps_published"] >= 300, procs=(first,))
        first.proc.kill()
        first.kill()
        second = Proc(args, env, tmp_path / "logs", "md-2")
        try:
            state = wait_for("the resumed replay", lambda: get(f"{url}/replay").json(), procs=(second,))
            assert state["steps_published"] >= 300  # it did not start again from the first bar
            wait_for("the replay to finish", lambda: get(f"{url}/replay").json()["finished"], procs=(second,))
        finally:
            second.stop()
        r = redis.Redis.from_url(REDIS_URL)
        try:
            fields = [f for _, f in r.xrange(f"alphaloop:{run_id}:bars")]
        finally:
            r.close()
        ids = [f[b"id"].decode() for f in fields if f[b"kind"] == b"bar"]
        assert len(set(ids)) == len(ROWS)  # every row once by id ...
        assert len(ids) - len(set(ids)) <= 2  # ... at most the interrupted step again
        assert set(ids) == {f"{run_id}:market-data:{n}" for n in range(1, len(ROWS) + 1)}
    finally:
        delete_streams(run_id)
