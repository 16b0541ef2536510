"""The RecordBus's wire: how a `qmtl.data.v1.Record` becomes a broker record and back.

value = `Record.SerializeToString()`; key = `records.message_key` (`{partition_key}:
{input_window_hash}`), partitioned by `records.partition_key` (so every record of one node,
interval and bucket lands on one partition, whatever its window); headers `content-type`,
`qmtl-message-type` = `qmtl.data.v1.Record` and `qmtl-contracts-version`. A record that does not
decode to a Record with a node id, or of a contracts major this runtime does not serve, is
dead-lettered with the reason. domain.md §2.6, docs/operations/data-plane.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from qmtl.data.v1 import record_pb2
from qmtl.runtime.eventbus.errors import InvalidEventError
from qmtl.runtime.eventbus.model import (
    CONTENT_TYPE,
    CONTRACTS_VERSION_HEADER,
    HEADER_CONTENT_TYPE,
    HEADER_MESSAGE_TYPE,
    UndecodableRecord,
    WireRecord,
    check_wire_headers,
)
from qmtl.runtime.eventbus.topics import is_dead_letter_topic
from qmtl.runtime.records import RecordKeyError, message_key, partition_key

RECORD_TYPE = record_pb2.Record.DESCRIPTOR.full_name  # "qmtl.data.v1.Record"


@dataclass(frozen=True, slots=True)
class RecordDelivery:
    """One record as a subscriber receives it, with where it was read from."""

    record: record_pb2.Record
    topic: str
    partition: int
    offset: int


class RecordCodec:
    message_name = RECORD_TYPE

    def check_publishable(self, topic: str, messages: Sequence[record_pb2.Record]) -> None:
        """Refuses, before anything is sent, a record whose keys cannot be built."""
        if not topic:
            raise InvalidEventError("topic is empty", field="topic")
        if is_dead_letter_topic(topic):
            raise InvalidEventError(
                f"{topic!r} is a dead-letter topic; only consumers write there", field="topic"
            )
        for index, record in enumerate(messages):
            try:
                message_key(record)
            except RecordKeyError as exc:
                raise InvalidEventError(
                    f"record {index}: {exc.message}",
                    field=f"records[{index}].{exc.field}",
                    topic=topic,
                ) from None

    def encode(self, message: record_pb2.Record) -> WireRecord:
        return WireRecord(
            key=message_key(message).encode(),
            value=message.SerializeToString(),
            headers=(
                (HEADER_CONTENT_TYPE, CONTENT_TYPE.encode()),
                (HEADER_MESSAGE_TYPE, RECORD_TYPE.encode()),
                CONTRACTS_VERSION_HEADER,
            ),
            partition_key=partition_key(message).encode(),
        )

    def decode(
        self, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> record_pb2.Record:
        check_wire_headers(value, headers, RECORD_TYPE)
        assert value is not None
        try:
            record = record_pb2.Record.FromString(value)
        except DecodeError as exc:
            raise UndecodableRecord(f"not a {RECORD_TYPE}: {exc}") from None
        if not record.node_id:
            # Protobuf parses many byte strings; one without a node could not be keyed.
            raise UndecodableRecord(f"{RECORD_TYPE} without node_id")
        return record

    def delivery(
        self, message: record_pb2.Record, topic: str, partition: int, offset: int
    ) -> RecordDelivery:
        return RecordDelivery(message, topic, partition, offset)


RECORD_CODEC = RecordCodec()
