"""Redis Streams bus: the production adapter, with the semantics of :class:`InMemoryBus`.

Every stream is stored under ``<prefix>:<stream>``; its dead letters under ``<prefix>:<stream>:dead``.
Consumer groups read from the start of the stream (``XGROUP CREATE ... 0 MKSTREAM``); each entry
goes to one consumer of a group and stays pending until acknowledged. A restarted consumer reads
its own pending entries first (``own_pending=True``); entries stalled on a dead consumer are taken
over with :meth:`RedisStreamsBus.claim_stalled` (``XAUTOCLAIM``).

Dead letters: an entry that was already delivered ``max_deliveries`` times, or that cannot be
decoded, is appended to ``<stream>:dead`` (original fields plus ``reason``, ``deliveries``,
``entry_id`` and ``group``) and acknowledged instead of being delivered; the consumer never sees it.

Unlike the in-memory adapter, trimming (``XADD MAXLEN ~ maxlen``) is by length only: with a group
far behind, Redis may drop entries it has not read yet. Size ``maxlen`` well above any backlog.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from alphaloop.bus.base import Received
from alphaloop.bus.envelope import SCHEMA_VERSION, Envelope, EnvelopeError
from alphaloop.core.errors import AlphaloopError

DEAD_SUFFIX = ":dead"


class BusUnavailableError(AlphaloopError):
    """The message bus (Redis) is unreachable or dropped the connection."""

    exit_code = 9


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(fields: dict[Any, Any]) -> Envelope:
    """``Envelope.decode`` of the usual entry (bytes fields as this bus writes them) without its
    generality; anything else goes through ``Envelope.decode``, which also names what is wrong."""
    try:
        v, ts_ns = int(fields[b"v"]), int(fields[b"ts_ns"])
        payload = json.loads(fields[b"payload"].decode())
        kind, message_id, source = fields[b"kind"].decode(), fields[b"id"].decode(), fields[b"source"].decode()
    except (KeyError, ValueError, TypeError, AttributeError):  # (UnicodeDecodeError is a ValueError)
        return Envelope.decode(fields)
    if v > SCHEMA_VERSION or not isinstance(payload, dict):
        return Envelope.decode(fields)
    return Envelope(kind=kind, id=message_id, payload=payload, v=v, ts_ns=ts_ns, source=source)


def _stream_entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
    """(entry id, fields) of a raw XREADGROUP reply of one stream (RESP3: a map, RESP2: an array;
    fields None for an entry deleted while pending)."""
    if not reply:
        return []
    rows = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    return [(eid, None if f is None else dict(zip(f[::2], f[1::2], strict=True))) for eid, f in rows]


class RedisStreamsBus:
    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "alphaloop",
        maxlen: int | None = 100_000,
        max_deliveries: int = 5,
        claim_idle_ms: int = 30_000,
        connect_timeout_s: float = 2.0,
    ):
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        self.url, self.prefix = url, prefix
        self.maxlen, self.max_deliveries, self.claim_idle_ms = maxlen, max_deliveries, claim_idle_ms
        self._shown_url = _redact(url)
        # No socket (read) timeout: a blocking XREADGROUP may legitimately wait longer than any
        # fixed timeout. Connecting fails fast, and without retry backoff.
        self._r = redis.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
        )
        with self._guard():
            self._r.ping()

    # --- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise BusUnavailableError(f"message bus unreachable at {self._shown_url}: {e}") from e
        except redis.ResponseError as e:
            if "NOGROUP" in str(e):
                raise
            raise BusUnavailableError(f"message bus at {self._shown_url} refused a command: {e}") from e

    def _key(self, stream: str) -> str:
        return f"{self.prefix}:{stream}"

    def _xadd(self, key: str, fields: dict[Any, Any]) -> str:
        if self.maxlen:
            return _text(self._r.xadd(key, fields, maxlen=self.maxlen, approximate=True))
        return _text(self._r.xadd(key, fields))

    def _delivery_counts(
        self, key: str, group: str, ids: list[str], consumer: str | None = None
    ) -> dict[str, int]:
        """Real delivery counts (XPENDING range) of the given pending entries."""
        if not ids:
            return {}
        pipe = self._r.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xpending_range(key, group, entry_id, entry_id, 1, consumername=consumer)
        return {
            _text(row["message_id"]): int(row["times_delivered"]) for rows in pipe.execute() for row in rows
        }

    def _dead_letter(
        self,
        stream: str,
        group: str,
        entry_id: str,
        fields: dict[Any, Any] | None,
        reason: str,
        deliveries: int,
    ) -> None:
        key = self._key(stream)
        extra = {"reason": reason, "deliveries": str(deliveries), "entry_id": entry_id, "group": group}
        dead = {k: v for k, v in (fields or {}).items() if _text(k) not in extra}
        self._xadd(key + DEAD_SUFFIX, {**dead, **extra})
        self._r.xack(key, group, entry_id)

    def _deliver(
        self, stream: str, group: str, entries: list[Any], counts: dict[str, int] | None
    ) -> list[Received]:
        """Decode entries; dead-letter those over the delivery limit or undecodable.

        ``counts`` are the real delivery counts (already including this delivery); None for
        first deliveries (``>``), whose count is 1.
        """
        out: list[Received] = []
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            deliveries = 1 if counts is None else counts.get(entry_id, 1)
            if not fields:  # deleted (trimmed) while pending: nothing to deliver
                self._dead_letter(
                    stream, group, entry_id, None, "entry deleted from the stream", deliveries - 1
                )
                continue
            if deliveries > self.max_deliveries:
                self._dead_letter(
                    stream,
                    group,
                    entry_id,
                    fields,
                    f"delivered {deliveries - 1} times without acknowledgement "
                    f"(max_deliveries={self.max_deliveries})",
                    deliveries - 1,
                )
                continue
            try:
                envelope = _decode(fields)
            except (EnvelopeError, UnicodeDecodeError) as e:
                self._dead_letter(stream, group, entry_id, fields, f"undecodable: {e}", deliveries)
                continue
            out.append(Received(stream, entry_id, envelope, deliveries))
        return out

    # --- MessageBus ---------------------------------------------------------------------------

    def publish(self, stream: str, envelope: Envelope) -> str:
        with self._guard():
            return self._xadd(self._key(stream), envelope.encode())

    def ensure_group(self, stream: str, group: str) -> None:
        with self._guard():
            try:
                self._r.xgroup_create(self._key(stream), group, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    def read(
        self,
        stream: str,
        group: str,
        consumer: str,
        count: int = 100,
        block_ms: int = 0,
        own_pending: bool = False,
    ) -> list[Received]:
        key = self._key(stream)
        with self._guard():
            try:
                return self._read(stream, key, group, consumer, count, block_ms, own_pending)
            except redis.ResponseError as e:
                if "NOGROUP" not in str(e):
                    raise
            self.ensure_group(stream, group)  # as the in-memory bus: reading creates the group
            return self._read(stream, key, group, consumer, count, block_ms, own_pending)

    def _read(
        self, stream: str, key: str, group: str, consumer: str, count: int, block_ms: int, own_pending: bool
    ) -> list[Received]:
        if own_pending:
            reply = self._r.xreadgroup(group, consumer, {key: "0"}, count=count)
            entries = reply[0][1] if reply else []
            counts = self._delivery_counts(key, group, [_text(i) for i, _ in entries], consumer)
            return self._deliver(stream, group, entries, counts)
        # BLOCK 0 means "forever" to Redis; here block_ms=0 means "do not wait"
        reply = self._r.xreadgroup(
            group, consumer, {key: ">"}, count=count, block=block_ms if block_ms > 0 else None
        )
        entries = reply[0][1] if reply else []
        return self._deliver(stream, group, entries, None)

    def ack(self, stream: str, group: str, entry_ids: list[str]) -> int:
        if not entry_ids:
            return 0
        with self._guard():
            try:
                return int(self._r.xack(self._key(stream), group, *entry_ids))
            except redis.ResponseError as e:
                if "NOGROUP" in str(e):
                    return 0
                raise

    def pending(self, stream: str, group: str) -> int:
        with self._guard():
            try:
                return int(self._r.xpending(self._key(stream), group)["pending"])
            except redis.ResponseError as e:
                if "NOGROUP" in str(e):
                    return 0
                raise

    def length(self, stream: str) -> int:
        with self._guard():
            return int(self._r.xlen(self._key(stream)))

    def close(self) -> None:
        self._r.close()

    # --- beyond the protocol -----------------------------------------------------------------

    def rewind(self, stream: str, group: str) -> None:
        """Make the group deliver the stream again from its first entry (recovery by replay)."""
        self.ensure_group(stream, group)
        with self._guard():
            self._r.xgroup_setid(self._key(stream), group, "0")

    def group_stats(self, stream: str, group: str) -> tuple[int, int | None]:
        """(pending, lag) of a group from XINFO GROUPS: entries delivered and not acknowledged, and
        entries not delivered yet (None when Redis cannot tell)."""
        with self._guard():
            try:
                groups = self._r.xinfo_groups(self._key(stream))
            except redis.ResponseError:
                return 0, 0  # no such stream yet
        for g in groups:
            name = g.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == group:
                lag = g.get("lag")
                return int(g.get("pending", 0)), None if lag is None else int(lag)
        return 0, 0

    def last_entry(self, stream: str) -> Any:
        """The stream's newest envelope, or None when it is empty."""
        with self._guard():
            rows = self._r.xrevrange(self._key(stream), count=1)
        return Envelope.decode(rows[0][1]) if rows else None

    def publish_many(self, items: list[tuple[str, Any]]) -> None:
        """Append many envelopes, in order, in one round trip. Several go in one MULTI/EXEC, so a
        consumer blocked on a stream wakes once, with all of them, not after the first."""
        if not items:
            return
        commands = [self._xadd_args(stream, env) for stream, env in items]
        if len(commands) > 1:
            commands = [[b"MULTI"], *commands, [b"EXEC"]]
        with self._guard():
            replies = self._round_trip(commands)
            for reply in replies[:-1] + (replies[-1] if isinstance(replies[-1], list) else [replies[-1]]):
                if isinstance(reply, Exception):
                    raise reply

    def exchange(
        self,
        items: list[tuple[str, Any]],
        stream: str,
        group: str,
        consumer: str,
        count: int = 100,
        block_ms: int = 0,
        acks: list[tuple[str, str, list[str]]] = (),  # type: ignore[assignment]
    ) -> list[Received]:
        """:meth:`publish_many` ``items``, then :meth:`ack` each (stream, group, entry ids) of ``acks``,
        then :meth:`read` new entries of ``stream`` for ``group``, all in one round trip (the
        producer's answer and its wait for the next input; the publish is never held by the wait)."""
        key = self._key(stream)
        acks = [a for a in acks if a[2]]
        # Packed here rather than by redis-py's pipeline: its per-argument encoding was most of a
        # pipeline service's time per message. Replies are read raw (without redis-py's callbacks).
        commands: list[list[bytes]] = []
        if items:
            commands.append([b"MULTI"])
            for item_stream, env in items:
                commands.append(self._xadd_args(item_stream, env))
            commands.append([b"EXEC"])
        for ack_stream, ack_group, ids in acks:
            commands.append([b"XACK", self._key(ack_stream).encode(), ack_group.encode(), *(i.encode() for i in ids)])
        read = [b"XREADGROUP", b"GROUP", group.encode(), consumer.encode(), b"COUNT", b"%d" % count]
        if block_ms > 0:  # BLOCK 0 means "forever" to Redis; here block_ms=0 means "do not wait"
            read += [b"BLOCK", b"%d" % block_ms]
        commands.append([*read, b"STREAMS", key.encode(), b">"])
        with self._guard():
            replies = self._round_trip(commands)
            for reply in replies[:-1]:
                if isinstance(reply, redis.ResponseError) and "NOGROUP" not in str(reply):
                    raise reply  # a publish refused: as publish_many would (acks of a vanished group pass)
            if items:  # EXEC: the transaction was refused, or a command in it failed
                done = replies[len(items) + 1]
                for err in done if isinstance(done, list) else [done]:
                    if isinstance(err, Exception):
                        raise err
            reply = replies[-1]
            if isinstance(reply, Exception):
                if "NOGROUP" not in str(reply):
                    raise reply
                self.ensure_group(stream, group)  # as read: reading creates the group
                return self._read(stream, key, group, consumer, count, block_ms, False)
            return self._deliver(stream, group, _stream_entries(reply), None)

    def _xadd_args(self, stream: str, env: Any) -> list[bytes]:
        args = [b"XADD", self._key(stream).encode()]
        if self.maxlen:
            args += [b"MAXLEN", b"~", b"%d" % self.maxlen]
        args.append(b"*")
        for k, v in env.encode().items():
            args += [k.encode(), v.encode()]
        return args

    def _round_trip(self, commands: list[list[bytes]]) -> list[Any]:
        """Send the commands at once; their raw replies, an error reply as its ResponseError."""
        out = []
        for args in commands:
            out.append(b"*%d\r\n" % len(args))
            for a in args:
                out += [b"$%d\r\n" % len(a), a, b"\r\n"]
        pool = self._r.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command([b"".join(out)])
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as e:  # the connection is still in step: read on
                    replies.append(e)
            return replies
        except BaseException:
            conn.disconnect()  # replies may be left unread: never reuse this connection
            raise
        finally:
            pool.release(conn)

    def ping(self) -> bool:
        with self._guard():
            return bool(self._r.ping())

    @property
    def shown_url(self) -> str:
        """The URL with any password hidden (for logs and health reports)."""
        return self._shown_url

    def delete_streams(self, streams: list[str]) -> int:
        """Delete streams and their dead-letter streams (tests and benchmarks clean up after themselves)."""
        keys = [self._key(s) for s in streams]
        with self._guard():
            return int(self._r.delete(*keys, *[k + ":dead" for k in keys]))


    def claim_stalled(
        self, stream: str, group: str, consumer: str, min_idle_ms: int | None = None, count: int = 100
    ) -> list[Received]:
        """Take over entries pending on other (dead) consumers for at least ``min_idle_ms``
        (default ``claim_idle_ms``) with XAUTOCLAIM; over-delivered ones go to the dead letters."""
        key = self._key(stream)
        idle = self.claim_idle_ms if min_idle_ms is None else min_idle_ms
        out: list[Received] = []
        with self._guard():
            try:
                start = "0-0"
                while len(out) < count:
                    next_id, entries, *_deleted = self._r.xautoclaim(
                        key, group, consumer, idle, start, count=count - len(out)
                    )
                    counts = self._delivery_counts(key, group, [_text(i) for i, _ in entries], consumer)
                    out.extend(self._deliver(stream, group, entries, counts))
                    start = _text(next_id)
                    if start == "0-0":
                        break
            except redis.ResponseError as e:
                if "NOGROUP" in str(e):
                    return []
                raise
        return out

    def dead_letters(self, stream: str, count: int = 100) -> list[dict[str, str]]:
        """The oldest dead-lettered entries of ``stream`` as flat string fields (with ``reason``)."""
        with self._guard():
            rows = self._r.xrange(self._key(stream) + DEAD_SUFFIX, count=count)

        def show(value: bytes | str) -> str:
            return value.decode(errors="replace") if isinstance(value, bytes) else value

        return [{show(k): show(v) for k, v in fields.items()} for _, fields in rows]
