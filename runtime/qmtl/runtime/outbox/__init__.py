"""The transactional outbox: stores that keep events with the state change that raised them,
and the relay that publishes them to the event bus, at least once.

Writers put their events into the outbox in the same transaction as the state change: the
GraphStore's `announce=` arguments (qmtl.runtime.graphstore.outbox), a Redis script built with
`outbox_script` (RedisOutbox), or `MemoryOutbox.append_now` under an in-memory store's lock.
`OutboxRelay` publishes and acks them. docs/operations/outbox.md.

The Redis names load `redis` only when first used, so this package imports without it (the
core wheel ships no Redis client; qmtl.runtime.outbox.redis_store is the module to import
directly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    InvalidOutboxInputError,
    OutboxConfigError,
    OutboxError,
    OutboxTooLargeError,
    OutboxUnavailableError,
)
from .memory_store import MemoryOutbox
from .relay import (
    DEFAULT_RELAY_INTERVAL_S,
    RELAY_BACKOFF_BASE_S,
    RELAY_BACKOFF_CAP_S,
    EventPublisher,
    OutboxRelay,
    OutboxStore,
    backoff_delay,
)
from .validation import outbox_argv

if TYPE_CHECKING:
    from .redis_store import OUTBOX_APPEND_LUA, RedisOutbox, RedisOutboxKeys, outbox_script

_REDIS_NAMES = frozenset({"OUTBOX_APPEND_LUA", "RedisOutbox", "RedisOutboxKeys", "outbox_script"})


def __getattr__(name: str) -> Any:
    if name in _REDIS_NAMES:
        from . import redis_store

        return getattr(redis_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_RELAY_INTERVAL_S",
    "OUTBOX_APPEND_LUA",
    "RELAY_BACKOFF_BASE_S",
    "RELAY_BACKOFF_CAP_S",
    "EventPublisher",
    "InvalidOutboxInputError",
    "MemoryOutbox",
    "OutboxConfigError",
    "OutboxError",
    "OutboxRelay",
    "OutboxStore",
    "OutboxTooLargeError",
    "OutboxUnavailableError",
    "RedisOutbox",
    "RedisOutboxKeys",
    "backoff_delay",
    "outbox_argv",
    "outbox_script",
]
