"""The events the DAG Manager raises (QueueUpdated, QueueLifecycle, ...), built by the runtime's
one envelope builder (qmtl.runtime.events.make_event); see relay.py for the outbox."""

from __future__ import annotations

import time
from collections.abc import Callable

from google.protobuf.message import Message

from qmtl.events.v1 import event_pb2
from qmtl.runtime import events
from qmtl.runtime.events import UnknownEventPayload

__all__ = ["DEFAULT_SOURCE", "PUBLISHED", "UnknownEventPayload", "make_event"]

DEFAULT_SOURCE = "qmtl/dag-manager/local"
PUBLISHED = frozenset(
    {"node_status_changed", "queue_updated", "queue_lifecycle", "service_restarted"}
)


def make_event(
    payload_field: str,
    payload: Message,
    *,
    subject: str,
    idempotency_key: str,
    source: str = DEFAULT_SOURCE,
    correlation_id: str = "",
    clock: Callable[[], float] = time.time,
) -> event_pb2.Event:
    """runtime make_event, refusing a payload the DAG Manager does not publish."""
    return events.make_event(
        payload_field,
        payload,
        subject=subject,
        idempotency_key=idempotency_key,
        source=source,
        correlation_id=correlation_id,
        clock=clock,
        publishes=PUBLISHED,
    )
