"""What every outbox store refuses before it writes or reads anything.

An entry is checked here exactly as the relay will check it before publishing
(`check_publishable`), so an event the bus would refuse for good is refused at the write,
where its writer still sees the error, rather than dropped later by the relay.
"""

from __future__ import annotations

from collections.abc import Sequence

from qmtl.events.v1 import event_pb2
from qmtl.runtime.eventbus.model import check_publishable
from qmtl.runtime.graphstore.model import MAX_BATCH
from qmtl.runtime.graphstore.outbox import MAX_OUTBOX_PAYLOAD_BYTES

from .errors import InvalidOutboxInputError, OutboxTooLargeError


def outbox_argv(topic: str, event: event_pb2.Event) -> tuple[str, str, bytes]:
    """(id, topic, payload) of one entry, validated as the relay will (check_publishable):
    raises InvalidEventError (no id, type or subject; an empty or dead-letter topic) or
    OutboxTooLargeError (a payload over MAX_OUTBOX_PAYLOAD_BYTES) before anything is written."""
    check_publishable(topic, [event])
    return event.id, topic, _payload(event, "payload")


def append_argv(topic: str, events: Sequence[event_pb2.Event]) -> list[tuple[str, str, bytes]]:
    """`outbox_argv` of every event of one `append`, all checked before the first is written."""
    if len(events) > MAX_BATCH:
        raise OutboxTooLargeError(
            f"{len(events)} events in one call, the limit is {MAX_BATCH}", field="events"
        )
    check_publishable(topic, events)
    return [
        (event.id, topic, _payload(event, f"events[{index}].payload"))
        for index, event in enumerate(events)
    ]


def _payload(event: event_pb2.Event, field: str) -> bytes:
    payload = event.SerializeToString()
    if len(payload) > MAX_OUTBOX_PAYLOAD_BYTES:
        raise OutboxTooLargeError(
            f"the serialized event is {len(payload)} bytes, the limit is "
            f"{MAX_OUTBOX_PAYLOAD_BYTES}",
            field=field,
        )
    return payload


def check_page(limit: int) -> None:
    if not 1 <= limit <= MAX_BATCH:
        raise InvalidOutboxInputError(f"must be 1..{MAX_BATCH}, got {limit}", field="limit")


def check_ack_ids(ids: Sequence[str]) -> None:
    if len(ids) > MAX_BATCH:
        raise OutboxTooLargeError(
            f"{len(ids)} ids in one call, the limit is {MAX_BATCH}", field="ids"
        )
    for index, value in enumerate(ids):
        if not value:
            raise InvalidOutboxInputError("must not be empty", field=f"ids[{index}]")
