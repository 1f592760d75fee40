"""In-memory bus: consumer-group semantics of Redis Streams, in one process."""

from __future__ import annotations

import threading

import pytest

from alphaloop.bus import Envelope, InMemoryBus
from alphaloop.bus.envelope import EnvelopeError


def env(k: int) -> Envelope:
    return Envelope("bar", f"m{k}", {"k": k})


def test_each_entry_goes_to_one_consumer_of_a_group_and_to_every_group():
    bus = InMemoryBus()
    for k in range(6):
        bus.publish("bars", env(k))
    a = bus.read("bars", "g1", "a", count=4)
    b = bus.read("bars", "g1", "b", count=4)
    assert [r.envelope.id for r in a] == ["m0", "m1", "m2", "m3"]
    assert [r.envelope.id for r in b] == ["m4", "m5"]
    other = bus.read("bars", "g2", "x", count=10)
    assert len(other) == 6


def test_unacknowledged_entries_are_redelivered_to_a_restarted_consumer():
    bus = InMemoryBus()
    for k in range(3):
        bus.publish("s", env(k))
    got = bus.read("s", "g", "c")
    bus.ack("s", "g", [got[0].entry_id])
    assert bus.pending("s", "g") == 2
    again = bus.read("s", "g", "c", own_pending=True)
    assert [(r.envelope.id, r.deliveries) for r in again] == [("m1", 2), ("m2", 2)]
    assert bus.read("s", "g", "c") == []  # nothing new
    assert bus.ack("s", "g", [r.entry_id for r in again]) == 2
    assert bus.pending("s", "g") == 0
    assert bus.ack("s", "g", [again[0].entry_id]) == 0  # acknowledging twice is harmless


def test_trimming_never_drops_unconsumed_entries():
    bus = InMemoryBus(maxlen=2)
    bus.ensure_group("s", "g")
    for k in range(5):
        bus.publish("s", env(k))
    assert [r.envelope.id for r in bus.read("s", "g", "c", count=10)] == ["m0", "m1", "m2", "m3", "m4"]


def test_blocking_read_wakes_on_publish():
    bus = InMemoryBus()
    bus.ensure_group("s", "g")
    got = []
    t = threading.Thread(target=lambda: got.extend(bus.read("s", "g", "c", block_ms=2000)))
    t.start()
    bus.publish("s", env(1))
    t.join(timeout=5)
    assert [r.envelope.id for r in got] == ["m1"]


def test_envelope_round_trip_and_refusals():
    e = Envelope("order", "o-1", {"size": 3.5, "instrument": "X"}, source="strategy")
    assert Envelope.decode(e.encode()) == e
    assert Envelope.decode({k.encode(): v.encode() for k, v in e.encode().items()}) == e  # as redis returns
    with pytest.raises(EnvelopeError, match="newer"):
        Envelope.decode({**e.encode(), "v": "99"})
    with pytest.raises(EnvelopeError, match="payload"):
        Envelope.decode({**e.encode(), "payload": "[1, 2]"})
    with pytest.raises(EnvelopeError, match="lacks field 'kind'"):
        Envelope.decode({k: v for k, v in e.encode().items() if k != "kind"})
