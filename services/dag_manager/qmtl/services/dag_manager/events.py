"""The envelope of every event the DAG Manager raises (QueueUpdated, QueueLifecycle, ...).

`make_event` is the one builder: it fixes the Event.id when the event is made, and the event is
then written to the outbox with the state change that raised it (relay.py), so a republish
after a crash carries the same id (docs/operations/outbox.md).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable

from google.protobuf.message import Message

from qmtl.events.v1 import event_pb2

# The envelope `type` of each payload field, as event.proto lists them on the oneof.
EVENT_TYPES: dict[str, str] = {
    "node_status_changed": "qmtl.dag.node_status_changed",
    "queue_updated": "qmtl.dag.queue_updated",
    "queue_lifecycle": "qmtl.dag.queue_lifecycle",
    "service_restarted": "qmtl.ops.service_restarted",
}
DEFAULT_SOURCE = "qmtl/dag-manager/local"


class UnknownEventPayload(Exception):
    """A payload field the DAG Manager does not publish (a programming error, not input)."""


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
    """An envelope around `payload`, its `type` derived from the oneof field it goes in."""
    event_type = EVENT_TYPES.get(payload_field)
    if event_type is None:
        raise UnknownEventPayload(f"the DAG Manager does not publish {payload_field!r}")
    event = event_pb2.Event(
        id=str(uuid.uuid4()),
        type=event_type,
        source=source,
        subject=subject,
        idempotency_key=idempotency_key,
        correlation_id=correlation_id,
    )
    # Seconds and fraction apart: epoch seconds times 1e9 exceeds a double's exact range.
    now = clock()
    seconds = math.floor(now)
    event.time.seconds = seconds
    event.time.nanos = min(round((now - seconds) * 1_000_000_000), 999_999_999)
    getattr(event, payload_field).CopyFrom(payload)
    return event
