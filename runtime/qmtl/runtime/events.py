"""The envelope of every event a service raises (qmtl.events.v1.Event).

`make_event` is the one builder: it fixes the Event.id when the event is made, and the event is
then written to an outbox with the state change that raised it, so a republish after a crash
carries the same id (docs/operations/outbox.md).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Collection

from google.protobuf.message import Message

from qmtl.events.v1 import event_pb2

# The envelope `type` of each payload field, as event.proto lists them on the oneof.
EVENT_TYPES: dict[str, str] = {
    "node_status_changed": "qmtl.dag.node_status_changed",
    "queue_updated": "qmtl.dag.queue_updated",
    "queue_lifecycle": "qmtl.dag.queue_lifecycle",
    "strategy_state_changed": "qmtl.gateway.strategy_state_changed",
    "dag_changed": "qmtl.gateway.dag_changed",
    "alert_raised": "qmtl.ops.alert_raised",
    "service_restarted": "qmtl.ops.service_restarted",
}


class UnknownEventPayload(Exception):
    """A payload field the producer does not publish (a programming error, not input)."""


def make_event(
    payload_field: str,
    payload: Message,
    *,
    subject: str,
    idempotency_key: str,
    source: str,
    correlation_id: str = "",
    clock: Callable[[], float] = time.time,
    publishes: Collection[str] | None = None,
) -> event_pb2.Event:
    """An envelope around `payload`, its `type` derived from the oneof field it goes in.

    `publishes`, when given, is the payload fields the producer may raise; any other is
    refused, so a service cannot emit another service's events by mistake.
    """
    event_type = EVENT_TYPES.get(payload_field)
    if event_type is None or (publishes is not None and payload_field not in publishes):
        raise UnknownEventPayload(f"{source} does not publish {payload_field!r}")
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
