"""What the bus hands a handler, and the wire: how an Event becomes a broker record and back.

The wire is plain protobuf so that a consumer knowing nothing of QMTL can read it with the
generated classes: value = `Event.SerializeToString()`, key = `Event.subject` (UTF-8; one
subject lands on one partition and stays ordered), headers `content-type`,
`qmtl-message-type` (the message's full name), `qmtl-event-id` and `qmtl-contracts-version`
(the contracts version of the producer, qmtl.runtime.contracts_version). A record that does not
decode to an Event with an id and a type, or whose contracts version names a major this runtime
does not serve, is dead-lettered with the reason (see `decode`), never handed to a handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from qmtl.events.v1 import event_pb2
from qmtl.runtime import contracts_version

from .errors import EventBusError, InvalidEventError
from .topics import is_dead_letter_topic

CONTENT_TYPE = "application/x-protobuf"
MESSAGE_TYPE = event_pb2.Event.DESCRIPTOR.full_name  # "qmtl.events.v1.Event"

HEADER_CONTENT_TYPE = "content-type"
HEADER_MESSAGE_TYPE = "qmtl-message-type"
HEADER_EVENT_ID = "qmtl-event-id"
HEADER_CONTRACTS_VERSION = contracts_version.HEADER
# Every record the buses write carries it, as every HTTP request and gRPC call does.
CONTRACTS_VERSION_HEADER = (HEADER_CONTRACTS_VERSION, contracts_version.SPOKEN_BYTES)

# Headers a dead letter carries besides the original record's own.
HEADER_DLQ_REASON = "qmtl-dlq-reason"
HEADER_DLQ_TOPIC = "qmtl-dlq-topic"
HEADER_DLQ_PARTITION = "qmtl-dlq-partition"
HEADER_DLQ_OFFSET = "qmtl-dlq-offset"
HEADER_DLQ_GROUP = "qmtl-dlq-group"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event as a subscriber receives it, with where it was read from."""

    event: event_pb2.Event
    topic: str
    partition: int
    offset: int


Handler = Callable[[Delivery], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class WireRecord:
    """A broker record as bytes: what a publish writes and a consumer reads."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    # What the partition is chosen by when it is not the key (a Record is keyed by its message
    # key but partitioned by its partition key); never written to the broker.
    partition_key: bytes | None = None

    @property
    def partitioned_by(self) -> bytes | None:
        return self.key if self.partition_key is None else self.partition_key


class UndecodableRecord(Exception):
    """A record that is not the bus's message; `reason` goes into the dead letter's headers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(event: event_pb2.Event) -> WireRecord:
    return WireRecord(
        key=event.subject.encode(),
        value=event.SerializeToString(),
        headers=(
            (HEADER_CONTENT_TYPE, CONTENT_TYPE.encode()),
            (HEADER_MESSAGE_TYPE, MESSAGE_TYPE.encode()),
            (HEADER_EVENT_ID, event.id.encode()),
            CONTRACTS_VERSION_HEADER,
        ),
    )


def check_wire_headers(
    value: bytes | None, headers: Sequence[tuple[str, bytes]], message_type: str
) -> None:
    """UndecodableRecord unless the record has a value and its headers, when present, name
    protobuf and `message_type` and a contracts version this runtime serves."""
    found = {name.lower(): raw for name, raw in headers}
    version = found.get(HEADER_CONTRACTS_VERSION)
    if version is not None:
        # First: a producer of another major may have changed any of the rest.
        refused = contracts_version.check_peer(version.decode("latin-1"))
        if refused is not None:
            contracts_version.REFUSALS.labels("kafka").inc()
            raise UndecodableRecord(refused.message)
    content_type = found.get(HEADER_CONTENT_TYPE)
    if content_type is not None and content_type.split(b";")[0].strip() != CONTENT_TYPE.encode():
        raise UndecodableRecord(f"content-type is {content_type!r}, not {CONTENT_TYPE}")
    named = found.get(HEADER_MESSAGE_TYPE)
    if named is not None and named != message_type.encode():
        raise UndecodableRecord(f"message type is {named!r}, not {message_type}")
    if value is None:
        raise UndecodableRecord("record has no value (a tombstone)")


def decode(value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> event_pb2.Event:
    """The Event in a record, or UndecodableRecord. Headers are optional (a foreign producer
    may send none) but when present must name protobuf and the Event type. Protobuf parses
    many random byte strings as unknown fields, so an Event without an id or type is refused
    too: it could not be deduped or routed."""
    check_wire_headers(value, headers, MESSAGE_TYPE)
    assert value is not None
    try:
        event = event_pb2.Event.FromString(value)
    except DecodeError as exc:
        raise UndecodableRecord(f"not a {MESSAGE_TYPE}: {exc}") from None
    if not event.id or not event.type:
        raise UndecodableRecord(f"{MESSAGE_TYPE} without id or type")
    return event


def dead_letter_headers(
    original: Sequence[tuple[str, bytes]],
    *,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    group: str,
) -> Headers:
    """The original headers plus where the record came from and why it was put aside."""
    return [
        *original,
        (HEADER_DLQ_REASON, reason.encode(errors="replace")),
        (HEADER_DLQ_TOPIC, topic.encode()),
        (HEADER_DLQ_PARTITION, str(partition).encode()),
        (HEADER_DLQ_OFFSET, str(offset).encode()),
        (HEADER_DLQ_GROUP, group.encode()),
    ]


def check_publishable(topic: str, events: Sequence[event_pb2.Event]) -> None:
    """Refuses, before anything is sent, events a consumer could not dedupe or key."""
    if not topic:
        raise InvalidEventError("topic is empty", field="topic")
    if is_dead_letter_topic(topic):
        raise InvalidEventError(
            f"{topic!r} is a dead-letter topic; only consumers write there", field="topic"
        )
    for index, event in enumerate(events):
        for name in ("id", "type", "subject"):
            if not getattr(event, name):
                raise InvalidEventError(
                    f"event has no {name}", field=f"events[{index}].{name}", topic=topic
                )


def check_subscribable(topics: Sequence[str], group: str) -> None:
    """Refuses a subscription the bus could not serve: no topics, no group, or a dead-letter
    topic (its records are not Events; read them with the broker's tools)."""
    if not topics:
        raise EventBusError(
            "subscribe needs at least one topic",
            operation="subscribe",
            retryable=False,
            code="E_VALIDATION",
            field="topics",
        )
    if not group:
        raise EventBusError(
            "subscribe needs a consumer group",
            operation="subscribe",
            topics=topics,
            retryable=False,
            code="E_VALIDATION",
            field="group",
        )
    for index, topic in enumerate(topics):
        if not topic or is_dead_letter_topic(topic):
            raise EventBusError(
                f"cannot subscribe to {topic!r}: empty or a dead-letter topic",
                operation="subscribe",
                topics=topics,
                retryable=False,
                code="E_VALIDATION",
                field=f"topics[{index}]",
            )


class EventCodec:
    """The EventBus's wire (see the module docstring)."""

    message_name = MESSAGE_TYPE

    def check_publishable(self, topic: str, messages: Sequence[event_pb2.Event]) -> None:
        check_publishable(topic, messages)

    def encode(self, message: event_pb2.Event) -> WireRecord:
        return encode(message)

    def decode(self, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> event_pb2.Event:
        return decode(value, headers)

    def delivery(
        self, message: event_pb2.Event, topic: str, partition: int, offset: int
    ) -> Delivery:
        return Delivery(message, topic, partition, offset)


EVENT_CODEC = EventCodec()
