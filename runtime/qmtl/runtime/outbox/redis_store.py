"""RedisOutbox: the transactional outbox in Redis, for state kept in Redis (the Gateway's).

A writer changes its state and appends the announcing events in ONE Lua script: it builds the
script with `outbox_script(body)`, which defines `qmtl_outbox_append`, passes the outbox's
three keys (`RedisOutboxKeys.as_list()`) in KEYS and each entry's `outbox_argv(topic, event)`
in ARGV. Redis runs a script to its end without interleaving another client, and applies its
writes even if a later command fails (there is no rollback), so the script checks everything
first and writes last. `RedisOutbox` is the OutboxStore the relay reads and acks.

Keys under the caller's prefix (give it a {hash tag} that covers the writer's own keys too,
so that one script's keys share a cluster slot):

    outbox:order    zset  id -> sequence number (oldest first; equal scores by id)
    outbox:seq      counter behind the sequence numbers
    outbox:entries  hash  id -> '<created ms>:<topic length in bytes>:<topic><payload>'

The topic's length rather than a separator frames the entry, so no topic character is
reserved. An entry that does not decode is handed to the relay as unpublishable (empty topic),
which logs it and acks it rather than letting it block the entries behind it.
docs/operations/outbox.md.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

import redis.asyncio as redis

from qmtl.events.v1 import event_pb2
from qmtl.runtime.graphstore.outbox import DEFAULT_OUTBOX_PAGE, OutboxEntry
from qmtl.runtime.workqueue.errors import QueueUnavailableError, WorkQueueError
from qmtl.runtime.workqueue.redis_calls import bounded

from .errors import OutboxConfigError, OutboxError, OutboxUnavailableError
from .validation import append_argv, check_ack_ids, check_page, outbox_argv

__all__ = [
    "DEFAULT_CALL_TIMEOUT_S",
    "OUTBOX_APPEND_LUA",
    "RedisOutbox",
    "RedisOutboxKeys",
    "decode_entry",
    "outbox_argv",
    "outbox_script",
]

T = TypeVar("T")
_log = logging.getLogger(__name__)

# Deadline of one outbox call, retries and reconnects included (the work queue's default).
DEFAULT_CALL_TIMEOUT_S = 5.0
# Makes Redis check for out-of-memory before the script starts rather than at its first write.
_SHEBANG = "#!lua\n"
# The relay's scripts run when Redis is out of memory too: reading and acking is what frees it
# (a flagged script without allow-oom is refused in that state, even one that only reads).
_READ_SHEBANG = "#!lua flags=no-writes,allow-oom\n"
_FREE_SHEBANG = "#!lua flags=allow-oom\n"
# Ids are written as UTF-8; one that is not (hand-written) still round-trips from pending to
# ack byte for byte, so that its entry can be dropped rather than block the outbox.
_ID_ERRORS = "surrogateescape"


def _lua(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


# Defines `local function qmtl_outbox_append(order_key, seq_key, entries_key, id, topic,
# payload)`; lua/outbox_append.lua says what it writes.
OUTBOX_APPEND_LUA = _lua("outbox_append")


def outbox_script(body: str) -> str:
    """A complete script: `body` with `qmtl_outbox_append` defined before it (and the shebang
    first, which must be the script's first line). Register it with `client.register_script`,
    which runs it by EVALSHA and reloads it after a NOSCRIPT."""
    return _SHEBANG + OUTBOX_APPEND_LUA + "\n" + body


@dataclass(frozen=True, slots=True)
class RedisOutboxKeys:
    order: str  # zset: id -> sequence number (oldest first)
    seq: str  # counter behind the sequence numbers
    entries: str  # hash: id -> encoded (created ms, topic, payload) of the entry

    @classmethod
    def for_prefix(cls, prefix: str) -> RedisOutboxKeys:
        return cls(
            order=prefix + "outbox:order",
            seq=prefix + "outbox:seq",
            entries=prefix + "outbox:entries",
        )

    def as_list(self) -> list[str]:
        """The KEYS a script calling qmtl_outbox_append passes, in its argument order."""
        return [self.order, self.seq, self.entries]


def decode_entry(entry_id: str, raw: bytes | None) -> OutboxEntry:
    """The entry as stored; one that does not decode comes back with an empty topic, which the
    relay drops (logged, acked) instead of publishing."""
    try:
        if raw is None:
            raise ValueError("the entry is missing from the entries hash")
        created, _, rest = raw.partition(b":")
        length, sep, rest = rest.partition(b":")
        size = int(length)
        if not sep or not 0 < size <= len(rest):
            raise ValueError(f"a topic of {length!r} bytes does not fit the entry")
        return OutboxEntry(entry_id, rest[:size].decode(), rest[size:], int(created) / 1000)
    except ValueError as exc:  # UnicodeDecodeError is one too
        _log.error("outbox entry %s does not decode (%s); the relay will drop it", entry_id, exc)
        return OutboxEntry(entry_id, "", raw or b"", 0.0)


class RedisOutbox:
    """An OutboxStore on Redis; `client` must return bytes (decode_responses=False) and stays
    the caller's to close. Every call is bounded by `call_timeout` whatever timeouts the client
    has; failures raise OutboxUnavailableError (retryable) or OutboxError."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        call_timeout: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> None:
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise OutboxConfigError(
                "RedisOutbox needs a client with decode_responses=False (payloads are bytes)",
                field="client",
            )
        if not call_timeout > 0:
            raise OutboxConfigError(
                f"must be > 0 seconds, got {call_timeout}", field="call_timeout"
            )
        self._client = client
        self._timeout = call_timeout
        self.keys = RedisOutboxKeys.for_prefix(prefix)
        self._append = client.register_script(outbox_script(_lua("append")))
        self._pending = client.register_script(_READ_SHEBANG + _lua("pending"))
        self._ack = client.register_script(_FREE_SHEBANG + _lua("ack"))

    async def append(self, topic: str, events: Sequence[event_pb2.Event]) -> int:
        """Adds each event not already pending, in one script (all or none); returns how many
        were added. For an outbox of its own; a state change uses `outbox_script` instead."""
        entries = append_argv(topic, events)
        if not entries:
            return 0
        args: list[Any] = [topic]
        for entry_id, _, payload in entries:
            args += (entry_id, payload)
        return int(await self._call(self._append(keys=self.keys.as_list(), args=args)))

    async def outbox_pending(self, limit: int = DEFAULT_OUTBOX_PAGE) -> list[OutboxEntry]:
        """Up to `limit` entries, oldest first."""
        check_page(limit)
        keys = [self.keys.order, self.keys.entries]
        reply = await self._call(self._pending(keys=keys, args=[limit]))
        return [
            decode_entry(entry_id.decode(errors=_ID_ERRORS), raw)
            for entry_id, raw in zip(reply[::2], reply[1::2], strict=True)
        ]

    async def outbox_ack(self, ids: Sequence[str]) -> int:
        """Removes the entries; returns how many were pending (unknown ids are ignored)."""
        check_ack_ids(ids)
        distinct = [i.encode(errors=_ID_ERRORS) for i in dict.fromkeys(ids)]
        if not distinct:
            return 0
        keys = [self.keys.order, self.keys.entries]
        return int(await self._call(self._ack(keys=keys, args=distinct)))

    async def outbox_size(self) -> int:
        """How many entries are pending."""
        return int(await self._call(self._client.zcard(self.keys.order)))

    async def _call(self, call: Awaitable[T]) -> T:
        # The work queue's deadline and error classification, reported as the outbox's errors.
        try:
            return await bounded(call, self._timeout)
        except QueueUnavailableError as exc:
            raise OutboxUnavailableError(exc.message) from exc
        except WorkQueueError as exc:
            raise OutboxError(f"Redis rejected an outbox operation: {exc.__cause__}") from exc
