"""The event buses under contract, and builders for their events.

Adding an adapter is one entry in `EVENT_BUS_ADAPTERS` plus its branch in `open_event_bus`.
Every test publishes to topics under its own random prefix; for Kafka they are created (with
their dead-letter topics, 3 partitions each, like the in-memory bus's default) before the test
and deleted after it. A broker that does not answer fails the test, never skips it.
`BusUnderTest` gives the tests what the port does not: writing raw bytes as a foreign producer
would, and reading a dead-letter topic.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from qmtl.events.v1 import alert_events_pb2, event_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import EventBus, InMemoryEventBus, WireRecord, dead_letter_topic
from qmtl.runtime.eventbus.kafka import KafkaEventBus
from qmtl.runtime.eventbus.kafka_settings import KafkaEventBusSettings
from tests.eventbus_kafka import TopicPrefix, private_topics, produce_raw, read_all

EVENT_BUS_ADAPTERS = ["memory", "kafka"]
PARTITIONS = 3
TOPICS = ("a", "b")

# Quicker hand-over of a stopped member's partitions than the production defaults.
CONTRACT_KAFKA_SETTINGS = KafkaEventBusSettings(
    session_timeout_ms=6_000, heartbeat_interval_ms=500, fetch_wait_ms=100
)


def make_event(subject: str, n: int, *, event_id: str | None = None) -> event_pb2.Event:
    """An AlertRaised event numbered `n` (in `message`) about `subject`."""
    return event_pb2.Event(
        id=event_id or str(uuid.uuid4()),
        type="qmtl.ops.alert_raised",
        source="qmtl/contract/test",
        subject=subject,
        idempotency_key=f"contract:{subject}:{n}",
        alert_raised=alert_events_pb2.AlertRaised(name="contract", message=str(n)),
    )


def number(event: event_pb2.Event) -> int:
    return int(event.alert_raised.message)


@dataclass
class BusUnderTest:
    adapter: str
    bus: EventBus
    topic: Callable[[str], str]
    """The test's private topic of that name ("a" or "b")."""
    publish_raw: Callable[[str, Sequence[WireRecord]], Awaitable[None]]
    dead_letters: Callable[[str, int], Awaitable[list[WireRecord]]]
    """The first `n` records of the dead-letter topic of a topic (waits for them on Kafka)."""
    all_dead_letters: Callable[[str], Awaitable[list[WireRecord]]]
    """Every record the dead-letter topic of a topic holds now."""


@asynccontextmanager
async def open_event_bus(adapter: str, endpoints: ServiceEndpoints) -> AsyncIterator[BusUnderTest]:
    prefix = TopicPrefix.fresh("contract-eventbus")
    if adapter == "memory":
        memory = InMemoryEventBus(partitions=PARTITIONS)

        async def raw_to_memory(topic: str, records: Sequence[WireRecord]) -> None:
            for record in records:
                await memory.publish_raw(
                    topic, record.value, key=record.key, headers=record.headers
                )

        async def memory_letters(topic: str, n: int) -> list[WireRecord]:
            return memory.records(dead_letter_topic(topic))[:n]

        async def all_memory_letters(topic: str) -> list[WireRecord]:
            return memory.records(dead_letter_topic(topic))

        try:
            yield BusUnderTest(
                adapter, memory, prefix, raw_to_memory, memory_letters, all_memory_letters
            )
        finally:
            await memory.aclose()
        return
    if adapter != "kafka":
        raise AssertionError(f"no event bus adapter {adapter!r}")
    bootstrap = endpoints.kafka_bootstrap
    async with private_topics(bootstrap, TOPICS, prefix=prefix, partitions=PARTITIONS):
        kafka = await KafkaEventBus.connect(
            bootstrap, client_id="contract", settings=CONTRACT_KAFKA_SETTINGS
        )

        async def raw_to_kafka(topic: str, records: Sequence[WireRecord]) -> None:
            await produce_raw(bootstrap, topic, records)

        async def kafka_letters(topic: str, n: int) -> list[WireRecord]:
            found = await read_all(bootstrap, dead_letter_topic(topic), expect=n)
            return [WireRecord(r.key, r.value, tuple(r.headers or ())) for r in found[:n]]

        async def all_kafka_letters(topic: str) -> list[WireRecord]:
            found = await read_all(bootstrap, dead_letter_topic(topic))
            return [WireRecord(r.key, r.value, tuple(r.headers or ())) for r in found]

        try:
            yield BusUnderTest(
                adapter, kafka, prefix, raw_to_kafka, kafka_letters, all_kafka_letters
            )
        finally:
            await kafka.aclose()
