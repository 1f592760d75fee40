"""RedisStreamsBus.exchange (publish, acknowledge and read in one round trip, packed by the bus
itself) against a real Redis: the same entries, acknowledgements and deliveries as the separate
calls, and publish_many's batch reaching a blocked consumer at once."""

from __future__ import annotations

import threading
import uuid

import pytest

from alphaloop.bus import Envelope

redis = pytest.importorskip("redis")

from alphaloop.bus.redis_streams import BusUnavailableError, RedisStreamsBus  # noqa: E402

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def bus():
    prefix = f"test-exchange-{uuid.uuid4().hex[:12]}"
    b = RedisStreamsBus(URL, prefix=prefix, maxlen=1000)
    yield b
    r = redis.Redis.from_url(URL)
    keys = list(r.scan_iter(match=f"{prefix}:*"))
    if keys:
        r.delete(*keys)
    r.close()
    b.close()


def env(k: int, text: str = "") -> Envelope:
    return Envelope("bar", f"m{k}", {"k": k, "x": 0.1 * k, "text": text}, source="test")


def raw_fields(bus: RedisStreamsBus, stream: str) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in bus._r.xrange(f"{bus.prefix}:{stream}")]


def test_exchange_writes_what_publish_writes_acks_and_reads_like_read(bus):
    items = [env(k, "é ✓") for k in range(4)]
    for e in items:
        bus.publish("by-publish", e)
    bus.ensure_group("in", "g")
    sent = [env(k) for k in range(10, 13)]
    bus.publish_many([("in", e) for e in sent])
    first = bus.read("in", "g", "c", count=2)
    assert bus.pending("in", "g") == 2
    got = bus.exchange([("by-exchange", e) for e in items], "in", "g", "c", count=10, block_ms=100,
                       acks=[("in", "g", [r.entry_id for r in first])])
    # the published entries are field for field those publish writes, in order
    assert raw_fields(bus, "by-exchange") == raw_fields(bus, "by-publish")
    # the acknowledged entries left the pending list; the one not read before is delivered now
    assert [r.envelope for r in got] == [sent[2]] and got[0].deliveries == 1
    assert bus.pending("in", "g") == 1
    # nothing new: the read waits block_ms and returns nothing; an empty exchange sends nothing
    assert bus.exchange([], "in", "g", "c", count=10, block_ms=50) == []
    assert bus.length("by-exchange") == 4


def test_exchange_creates_a_missing_group_and_dead_letters_an_undecodable_entry(bus):
    bus.publish("s", env(1))
    bus._r.xadd(f"{bus.prefix}:s", {"kind": "bar", "id": "bad", "v": "1", "ts_ns": "1", "source": "",
                                    "payload": "not json"})
    bus.publish("s", env(2))
    got = bus.exchange([], "s", "new-group", "c", count=10)  # as read: reading creates the group
    assert [r.envelope.id for r in got] == ["m1", "m2"]
    dead = bus.dead_letters("s")
    assert len(dead) == 1 and dead[0]["id"] == "bad" and dead[0]["reason"].startswith("undecodable")


def test_a_refused_publish_in_an_exchange_raises_a_bus_error(bus):
    bus._r.set(f"{bus.prefix}:not-a-stream", "x")
    with pytest.raises(BusUnavailableError, match="refused a command"):
        bus.exchange([("not-a-stream", env(1))], "in", "g", "c", count=10)


def test_a_blocked_consumer_receives_a_published_batch_in_one_read(bus):
    bus.ensure_group("s", "g")
    reads: list[list] = []
    t = threading.Thread(target=lambda: reads.append(bus_reader.read("s", "g", "c", count=100, block_ms=5000)))
    bus_reader = RedisStreamsBus(URL, prefix=bus.prefix)
    name = f"reader-{uuid.uuid4().hex[:8]}"
    bus_reader._r.client_setname(name)  # (its one pooled connection is the one that reads)
    try:
        t.start()
        while not any(c.get("name") == name and "b" in c.get("flags", "") for c in bus._r.client_list()):
            threading.Event().wait(0.01)  # until the reader is blocked on the stream
        bus.publish_many([("s", env(k)) for k in range(5)])  # MULTI/EXEC: the reader wakes after all five
        t.join(10)
    finally:
        bus_reader.close()
    assert [r.envelope.id for r in reads[0]] == [f"m{k}" for k in range(5)]
