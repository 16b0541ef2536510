"""The record buses under contract, and builders for their records.

Like eventbus_support: each test gets topics under its own random prefix (for Kafka created
with their dead-letter topics, 3 partitions each, and deleted afterwards; the in-memory bus is
made with 3 partitions too, so partitioning is under test on both). A broker that does not
answer fails the test, never skips it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from google.protobuf import struct_pb2, timestamp_pb2

from qmtl.data.v1 import record_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import WireRecord, dead_letter_topic
from qmtl.runtime.recordbus import InMemoryRecordBus, RecordBus
from qmtl.runtime.recordbus.kafka import KafkaRecordBus
from tests.contract.eventbus_support import CONTRACT_KAFKA_SETTINGS
from tests.eventbus_kafka import TopicPrefix, private_topics, produce_raw, read_all

RECORD_BUS_ADAPTERS = ["memory", "kafka"]
PARTITIONS = 3
TOPICS = ("a", "b")
INTERVAL = 60


def make_record(node: str, bucket: int, value: float, *, window: str = "w") -> record_pb2.Record:
    """The record of node `node` for bucket number `bucket` (seconds = bucket * INTERVAL)."""
    payload = struct_pb2.Value(number_value=value)
    return record_pb2.Record(
        node_id=node,
        interval=INTERVAL,
        bucket_ts=timestamp_pb2.Timestamp(seconds=bucket * INTERVAL),
        input_window_hash=window,
        payload_type=payload.DESCRIPTOR.full_name,
        payload=payload.SerializeToString(),
    )


def value_of(record: record_pb2.Record) -> float:
    return float(struct_pb2.Value.FromString(record.payload).number_value)


@dataclass
class RecordBusUnderTest:
    adapter: str
    bus: RecordBus
    topic: Callable[[str], str]
    produce_raw: Callable[[str, Sequence[WireRecord]], Awaitable[None]]
    dead_letters: Callable[[str, int], Awaitable[list[WireRecord]]]


@asynccontextmanager
async def open_record_bus(
    adapter: str, endpoints: ServiceEndpoints
) -> AsyncIterator[RecordBusUnderTest]:
    prefix = TopicPrefix.fresh("contract-recordbus")
    if adapter == "memory":
        memory = InMemoryRecordBus(partitions=PARTITIONS)

        async def raw_to_memory(topic: str, records: Sequence[WireRecord]) -> None:
            for record in records:
                await memory.publish_raw(
                    topic, record.value, key=record.key, headers=record.headers
                )

        async def memory_letters(topic: str, n: int) -> list[WireRecord]:
            return memory.records(dead_letter_topic(topic))[:n]

        try:
            yield RecordBusUnderTest(adapter, memory, prefix, raw_to_memory, memory_letters)
        finally:
            await memory.aclose()
        return
    if adapter != "kafka":
        raise AssertionError(f"no record bus adapter {adapter!r}")
    bootstrap = endpoints.kafka_bootstrap
    async with private_topics(bootstrap, TOPICS, prefix=prefix, partitions=PARTITIONS):
        kafka = await KafkaRecordBus.connect(
            bootstrap, client_id="contract-records", settings=CONTRACT_KAFKA_SETTINGS
        )

        async def raw_to_kafka(topic: str, records: Sequence[WireRecord]) -> None:
            await produce_raw(bootstrap, topic, records)

        async def kafka_letters(topic: str, n: int) -> list[WireRecord]:
            found = await read_all(bootstrap, dead_letter_topic(topic), expect=n)
            return [WireRecord(r.key, r.value, tuple(r.headers or ())) for r in found[:n]]

        try:
            yield RecordBusUnderTest(adapter, kafka, prefix, raw_to_kafka, kafka_letters)
        finally:
            await kafka.aclose()
