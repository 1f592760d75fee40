"""Redis Streams bus against a real Redis (127.0.0.1:6379): the in-memory bus's semantics, plus
claiming, dead letters, trimming and a clear error when Redis is unreachable."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from alphaloop.bus import Envelope
from alphaloop.core.errors import AlphaloopError

redis = pytest.importorskip("redis")

from alphaloop.bus.redis_streams import BusUnavailableError, RedisStreamsBus  # noqa: E402

URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not _redis_up(), reason=f"no Redis server at {URL}")


def env(k: int) -> Envelope:
    return Envelope("bar", f"m{k}", {"k": k})


@pytest.fixture
def make_bus():
    """Buses with a unique key prefix; every key under it is deleted afterwards."""
    prefix = f"test-bus-{uuid.uuid4().hex[:12]}"
    buses: list[RedisStreamsBus] = []

    def make(**kw) -> RedisStreamsBus:
        bus = RedisStreamsBus(URL, prefix=prefix, **kw)
        buses.append(bus)
        return bus

    yield make
    r = redis.Redis.from_url(URL)
    keys = list(r.scan_iter(match=f"{prefix}:*"))
    if keys:
        r.delete(*keys)
    r.close()
    for bus in buses:
        bus.close()


@needs_redis
def test_each_entry_goes_to_one_consumer_of_a_group_and_to_every_group(make_bus):
    bus = make_bus()
    for k in range(6):
        bus.publish("bars", env(k))
    a = bus.read("bars", "g1", "a", count=4)
    b = bus.read("bars", "g1", "b", count=4)
    assert [r.envelope.id for r in a] == ["m0", "m1", "m2", "m3"]
    assert [r.envelope.id for r in b] == ["m4", "m5"]
    assert a[0].envelope.payload == {"k": 0} and a[0].stream == "bars" and a[0].deliveries == 1
    other = bus.read("bars", "g2", "x", count=10)
    assert len(other) == 6
    assert bus.length("bars") == 6


@needs_redis
def test_envelope_survives_the_round_trip(make_bus):
    bus = make_bus()
    e = Envelope("order", "o-1", {"size": 3.5, "instrument": "X"}, source="strategy")
    bus.ensure_group("s", "g")
    bus.ensure_group("s", "g")  # idempotent (BUSYGROUP ignored)
    bus.publish("s", e)
    assert [r.envelope for r in bus.read("s", "g", "c")] == [e]


@needs_redis
def test_unacknowledged_entries_are_redelivered_to_a_restarted_consumer(make_bus):
    bus = make_bus()
    for k in range(3):
        bus.publish("s", env(k))
    got = bus.read("s", "g", "c")
    assert bus.ack("s", "g", [got[0].entry_id]) == 1
    assert bus.pending("s", "g") == 2
    restarted = make_bus()  # a new process: a new connection, same consumer name
    again = restarted.read("s", "g", "c", own_pending=True)
    assert [(r.envelope.id, r.deliveries) for r in again] == [("m1", 2), ("m2", 2)]
    assert restarted.read("s", "g", "other", own_pending=True) == []  # only its own
    assert restarted.read("s", "g", "c") == []  # nothing new
    assert restarted.ack("s", "g", [r.entry_id for r in again]) == 2
    assert restarted.pending("s", "g") == 0
    assert restarted.ack("s", "g", [again[0].entry_id]) == 0  # acknowledging twice is harmless
    assert restarted.ack("s", "nogroup", [again[0].entry_id]) == 0
    assert restarted.pending("s", "nogroup") == 0


@needs_redis
def test_blocking_read_wakes_on_publish(make_bus):
    bus = make_bus()
    bus.ensure_group("s", "g")
    assert bus.read("s", "g", "c", block_ms=0) == []  # block_ms=0 does not wait
    got = []
    t = threading.Thread(target=lambda: got.extend(bus.read("s", "g", "c", block_ms=5000)))
    t.start()
    time.sleep(0.1)
    start = time.monotonic()
    bus.publish("s", env(1))
    t.join(timeout=5)
    assert [r.envelope.id for r in got] == ["m1"]
    assert time.monotonic() - start < 2


@needs_redis
def test_stalled_entries_of_a_dead_consumer_are_claimed_by_a_live_one(make_bus):
    bus = make_bus(claim_idle_ms=50)
    for k in range(3):
        bus.publish("s", env(k))
    dead = bus.read("s", "g", "dead", count=2)
    assert [r.envelope.id for r in dead] == ["m0", "m1"]
    assert bus.claim_stalled("s", "g", "live") == []  # not idle long enough yet
    time.sleep(0.1)
    claimed = bus.claim_stalled("s", "g", "live")
    assert [(r.envelope.id, r.deliveries) for r in claimed] == [("m0", 2), ("m1", 2)]
    assert bus.read("s", "g", "dead", own_pending=True) == []  # no longer the dead one's
    assert [r.envelope.id for r in bus.read("s", "g", "live", own_pending=True)] == ["m0", "m1"]
    assert bus.ack("s", "g", [r.entry_id for r in claimed]) == 2
    assert bus.claim_stalled("s", "nogroup", "live", min_idle_ms=0) == []


@needs_redis
def test_an_entry_delivered_max_deliveries_times_goes_to_the_dead_letters(make_bus):
    bus = make_bus(max_deliveries=3)
    bus.publish("s", env(1))
    assert [r.deliveries for r in bus.read("s", "g", "c")] == [1]
    assert [r.deliveries for r in bus.read("s", "g", "c", own_pending=True)] == [2]
    assert [r.deliveries for r in bus.claim_stalled("s", "g", "d", min_idle_ms=0)] == [3]
    assert bus.read("s", "g", "d", own_pending=True) == []  # a fourth delivery: dead instead
    assert bus.claim_stalled("s", "g", "e", min_idle_ms=0) == []
    assert bus.pending("s", "g") == 0
    assert bus.length("s:dead") == 1
    [dead] = bus.dead_letters("s")
    assert dead["id"] == "m1" and dead["deliveries"] == "3" and "max_deliveries=3" in dead["reason"]
    assert Envelope.decode(dead).payload == {"k": 1}  # the original fields are kept


@needs_redis
def test_an_undecodable_entry_is_dead_lettered_without_crashing_the_consumer(make_bus):
    bus = make_bus()
    bus.publish("s", env(1))
    raw = redis.Redis.from_url(URL)
    raw.xadd(f"{bus.prefix}:s", {"kind": "bar", "id": "bad", "v": "1", "ts_ns": "x", "payload": "{"})
    raw.xadd(f"{bus.prefix}:s", {"junk": b"\xff\xfe"})
    raw.close()
    bus.publish("s", env(2))
    got = bus.read("s", "g", "c")
    assert [r.envelope.id for r in got] == ["m1", "m2"]
    assert bus.pending("s", "g") == 2  # the bad ones were acknowledged
    reasons = [d["reason"] for d in bus.dead_letters("s")]
    assert len(reasons) == 2 and all(r.startswith("undecodable") for r in reasons)
    assert "lacks field" in reasons[1]


@needs_redis
def test_approximate_trimming_keeps_the_stream_bounded(make_bus):
    bus = make_bus(maxlen=100)
    for k in range(1500):
        bus.publish("s", env(k))
    assert 100 <= bus.length("s") <= 100 + 200  # trimmed by whole nodes (100 entries by default)


def test_unreachable_redis_raises_a_clear_error_quickly():
    start = time.monotonic()
    with pytest.raises(BusUnavailableError, match=r"redis://127\.0\.0\.1:1/0") as info:
        RedisStreamsBus("redis://127.0.0.1:1/0")
    assert time.monotonic() - start < 3
    assert isinstance(info.value, AlphaloopError) and info.value.exit_code == 9


def test_the_password_is_not_shown_in_errors():
    with pytest.raises(BusUnavailableError) as info:
        RedisStreamsBus("redis://user:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in str(info.value) and "127.0.0.1:1" in str(info.value)


def test_importing_the_bus_package_exposes_the_redis_adapter_lazily():
    import alphaloop.bus as bus_pkg

    assert bus_pkg.RedisStreamsBus is RedisStreamsBus


@needs_redis
def test_rewind_redelivers_from_the_first_entry_and_group_stats_count_pending_and_lag(make_bus):
    bus = make_bus()
    bus.ensure_group("s", "g")
    bus.publish_many([("s", env(k)) for k in range(5)])  # one round trip, in order
    assert bus.length("s") == 5 and bus.last_entry("s").id == "m4"
    got = bus.read("s", "g", "c1", count=3)
    assert [r.envelope.id for r in got] == ["m0", "m1", "m2"]
    # XINFO GROUPS: 3 delivered and not acknowledged, 2 never delivered
    assert bus.group_stats("s", "g") == (3, 2)
    bus.ack("s", "g", [r.entry_id for r in got])
    assert bus.group_stats("s", "g") == (0, 2)
    bus.rewind("s", "g")  # recovery by replay: the group reads the whole stream again
    assert [r.envelope.id for r in bus.read("s", "g", "c1", count=10)] == [f"m{k}" for k in range(5)]
    assert bus.group_stats("nothing-here", "g") == (0, 0)
    assert bus.last_entry("nothing-here") is None
    assert bus.ping() is True
    assert bus.delete_streams(["s"]) == 1 and bus.length("s") == 0
