"""The transactional outbox's relay: from the store's outbox to the event bus, at least once.

Writers put their events into the outbox in the same transaction as the state change (the
GraphStore's `announce=` arguments, qmtl.runtime.graphstore.outbox); `OutboxRelay` publishes
and acks them. docs/operations/outbox.md.
"""

from .errors import OutboxConfigError
from .relay import (
    DEFAULT_RELAY_INTERVAL_S,
    RELAY_BACKOFF_BASE_S,
    RELAY_BACKOFF_CAP_S,
    EventPublisher,
    OutboxRelay,
    OutboxStore,
    backoff_delay,
)

__all__ = [
    "DEFAULT_RELAY_INTERVAL_S",
    "RELAY_BACKOFF_BASE_S",
    "RELAY_BACKOFF_CAP_S",
    "EventPublisher",
    "OutboxConfigError",
    "OutboxRelay",
    "OutboxStore",
    "backoff_delay",
]
