"""The event bus's wire on the real broker is plain protobuf: a raw aiokafka consumer that
knows nothing of QMTL (only the generated classes) decodes every message; and the producer's
safe settings are the ones docs/operations/kafka.md states."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from google.protobuf import timestamp_pb2

from qmtl.events.v1 import event_pb2, queue_events_pb2
from qmtl.runtime import contracts_version
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import Delivery, EventBusError
from qmtl.runtime.eventbus.kafka import KafkaEventBus
from qmtl.runtime.eventbus.kafka_settings import KafkaEventBusSettings
from tests.contract.eventbus_support import make_event
from tests.eventbus_kafka import STEP_TIMEOUT_S, TopicPrefix, private_topics

EVENTS = 200


def queue_updated(n: int) -> event_pb2.Event:
    return event_pb2.Event(
        id=str(uuid.uuid4()),
        type="qmtl.dag.queue_updated",
        source="qmtl/dag-manager/wire-test",
        time=timestamp_pb2.Timestamp(seconds=1_767_225_600 + n),
        subject=f"tags/btc.price/{60 * (n % 3 + 1)}",
        idempotency_key=f"queue_updated:btc.price:{n}",
        queue_updated=queue_events_pb2.QueueUpdated(tags=["btc", "price"], interval=60, version=n),
    )


async def test_a_plain_aiokafka_consumer_decodes_every_event_with_the_generated_classes(
    endpoints: ServiceEndpoints,
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    prefix = TopicPrefix.fresh("wire")
    topic = prefix("events")
    sent = [queue_updated(n) if n % 2 else make_event(f"nodes/n{n % 7}", n) for n in range(EVENTS)]
    async with private_topics(bootstrap, ["events"], prefix=prefix, partitions=3):
        bus = await KafkaEventBus.connect(bootstrap, client_id="wire")
        try:
            await bus.publish(topic, sent)
        finally:
            await bus.aclose()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=prefix("raw"),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await asyncio.wait_for(consumer.start(), STEP_TIMEOUT_S)
        received: list[ConsumerRecord] = []
        try:
            async with asyncio.timeout(STEP_TIMEOUT_S):
                while len(received) < EVENTS:
                    for batch in (await consumer.getmany(timeout_ms=500)).values():
                        received.extend(batch)
        finally:
            await consumer.stop()

    assert len(received) == EVENTS
    by_id = {event.id: event for event in sent}
    partition_of: dict[bytes, set[int]] = {}
    for record in received:
        decoded = event_pb2.Event.FromString(record.value)
        assert decoded == by_id[decoded.id]
        assert record.key == decoded.subject.encode()
        assert dict(record.headers) == {
            "content-type": b"application/x-protobuf",
            "qmtl-message-type": b"qmtl.events.v1.Event",
            "qmtl-event-id": decoded.id.encode(),
            "qmtl-contracts-version": contracts_version.SPOKEN.encode(),
        }
        partition_of.setdefault(record.key, set()).add(record.partition)
    assert all(len(parts) == 1 for parts in partition_of.values())
    updated = [event_pb2.Event.FromString(r.value) for r in received]
    assert {e.queue_updated.version for e in updated if e.HasField("queue_updated")} == set(
        range(1, EVENTS, 2)
    )


async def test_the_producer_is_idempotent_and_waits_for_all_replicas(
    endpoints: ServiceEndpoints,
) -> None:
    bus = await KafkaEventBus.connect(endpoints.kafka_bootstrap, client_id="wire-settings")
    try:
        producer = bus.producer
        # aiokafka's own state: acks=all is -1 on the wire; an idempotent producer has a
        # transaction manager holding the producer id the broker assigned.
        assert producer._sender._acks == -1
        assert producer._txn_manager is not None
        assert producer._txn_manager.producer_id >= 0
    finally:
        await bus.aclose()


async def test_publishing_to_a_missing_topic_is_a_typed_not_found(
    endpoints: ServiceEndpoints,
) -> None:
    settings = KafkaEventBusSettings(request_timeout_ms=1_500)
    bus = await KafkaEventBus.connect(endpoints.kafka_bootstrap, settings=settings)
    missing = TopicPrefix.fresh("missing")("events")
    try:
        with pytest.raises(EventBusError) as published:
            await bus.publish(missing, [make_event("nodes/n", 1)])
        assert published.value.code == "E_NOT_FOUND"
        assert not published.value.retryable

        async def ignore(delivery: Delivery) -> None:
            return None

        with pytest.raises(EventBusError) as subscribed:
            await bus.subscribe([missing], "g", ignore)
        assert subscribed.value.code == "E_NOT_FOUND"
        assert subscribed.value.topics == (missing,)
    finally:
        await bus.aclose()


async def test_connecting_to_no_broker_is_a_retryable_typed_error() -> None:
    from tests.integration.workqueue_support import free_port

    settings = KafkaEventBusSettings(request_timeout_ms=1_500)
    with pytest.raises(EventBusError) as caught:
        await KafkaEventBus.connect(f"127.0.0.1:{free_port()}", settings=settings)
    assert caught.value.operation == "connect"
    assert caught.value.retryable
