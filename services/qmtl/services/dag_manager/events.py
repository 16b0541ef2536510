"""Where the DAG Manager's core puts the events it raises (QueueUpdated, QueueLifecycle).

The core only builds `qmtl.events.v1.Event` envelopes and hands them to an `EventSink`; which
bus carries them is the server's choice. `InMemoryEventSink` keeps them in a list (the embedded
default and the tests); the Kafka event bus plugs in behind the same Protocol.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from google.protobuf.message import Message

from qmtl.events.v1 import event_pb2

# The envelope `type` of each payload field, as event.proto lists them on the oneof.
EVENT_TYPES: dict[str, str] = {
    "node_status_changed": "qmtl.dag.node_status_changed",
    "queue_updated": "qmtl.dag.queue_updated",
    "queue_lifecycle": "qmtl.dag.queue_lifecycle",
}
DEFAULT_SOURCE = "qmtl/dag-manager/local"


class UnknownEventPayload(Exception):
    """A payload field the DAG Manager does not publish (a programming error, not input)."""


class EventSink(Protocol):
    async def publish(self, event: event_pb2.Event) -> None: ...


class InMemoryEventSink:
    """Keeps every published event, in order."""

    def __init__(self) -> None:
        self.events: list[event_pb2.Event] = []

    async def publish(self, event: event_pb2.Event) -> None:
        self.events.append(event)

    def payloads(self, payload_field: str) -> list[Message]:
        """The payloads of the events of one kind, in publish order."""
        return [
            getattr(e, payload_field)
            for e in self.events
            if e.WhichOneof("payload") == payload_field
        ]


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
