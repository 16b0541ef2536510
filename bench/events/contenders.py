"""The two sides of the events bench, behind one shape so a round runs them identically.

bus   qmtl.runtime.eventbus.kafka.KafkaEventBus: publish() / subscribe(), as services use it
raw   aiokafka by hand with the same safe settings: idempotent producer, acks=all, the same
      key (subject), value (serialized Event) and headers; a consumer without auto-commit
      that decodes each record into an Event, runs the handler and commits after the batch
      was handled. It has none of the bus's extras (event checks before sending, typed
      errors with bounded retries, dead-lettering of undecodable records, failure tracking).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from qmtl.events.v1 import event_pb2
from qmtl.runtime.eventbus import Delivery, Handler, encode
from qmtl.runtime.eventbus.kafka import KafkaEventBus
from qmtl.runtime.eventbus.kafka_settings import KafkaEventBusSettings

# The bus's defaults, so both sides batch, wait and commit alike.
SETTINGS = KafkaEventBusSettings()


class Stoppable(Protocol):
    async def stop(self) -> None: ...


class Contender(Protocol):
    name: str

    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None: ...

    async def subscribe(self, topic: str, group: str, handler: Handler) -> Stoppable: ...

    async def aclose(self) -> None: ...


class BusContender:
    name = "bus"

    def __init__(self, bus: KafkaEventBus) -> None:
        self._bus = bus

    @classmethod
    async def connect(cls, bootstrap: str) -> BusContender:
        return cls(await KafkaEventBus.connect(bootstrap, client_id="qmtl-bench-events-bus"))

    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None:
        await self._bus.publish(topic, events)

    async def subscribe(self, topic: str, group: str, handler: Handler) -> Stoppable:
        return await self._bus.subscribe([topic], group, handler)

    async def aclose(self) -> None:
        await self._bus.aclose()


class _RawSubscription:
    def __init__(self, consumer: AIOKafkaConsumer, handler: Handler) -> None:
        self._consumer = consumer
        self._handler = handler
        self._task = asyncio.create_task(self._run(), name="bench-raw-consumer")

    async def _run(self) -> None:
        consumer = self._consumer
        while True:
            fetched = await consumer.getmany(
                timeout_ms=SETTINGS.fetch_wait_ms, max_records=SETTINGS.max_poll_records
            )
            for tp, records in fetched.items():
                for record in records:
                    event = event_pb2.Event.FromString(record.value or b"")
                    await self._handler(Delivery(event, tp.topic, tp.partition, record.offset))
            if fetched:
                await consumer.commit()  # only what was handled: the fetched batch

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()


class RawContender:
    name = "raw"

    def __init__(self, bootstrap: str, producer: AIOKafkaProducer) -> None:
        self._bootstrap = bootstrap
        self._producer = producer

    @classmethod
    async def connect(cls, bootstrap: str) -> RawContender:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="qmtl-bench-events-raw",
            enable_idempotence=True,
            acks="all",
            linger_ms=SETTINGS.linger_ms,
            max_batch_size=SETTINGS.max_batch_bytes,
            request_timeout_ms=SETTINGS.request_timeout_ms,
            retry_backoff_ms=int(SETTINGS.backoff_base_s * 1000),
        )
        await producer.start()
        return cls(bootstrap, producer)

    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None:
        # Queue every send, then wait for every acknowledgement: the bus's publish contract.
        pending = []
        for event in events:
            wire = encode(event)
            pending.append(
                await self._producer.send(
                    topic, value=wire.value, key=wire.key, headers=list(wire.headers)
                )
            )
        await asyncio.gather(*pending)

    async def subscribe(self, topic: str, group: str, handler: Handler) -> Stoppable:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self._bootstrap,
            client_id="qmtl-bench-events-raw",
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=SETTINGS.request_timeout_ms,
            max_poll_records=SETTINGS.max_poll_records,
            fetch_max_wait_ms=SETTINGS.fetch_wait_ms,
            session_timeout_ms=SETTINGS.session_timeout_ms,
            heartbeat_interval_ms=SETTINGS.heartbeat_interval_ms,
            max_poll_interval_ms=SETTINGS.max_poll_interval_ms,
            retry_backoff_ms=int(SETTINGS.backoff_base_s * 1000),
        )
        await consumer.start()
        return _RawSubscription(consumer, handler)

    async def aclose(self) -> None:
        await self._producer.stop()


class BrokerSetupError(Exception):
    """The broker refused to create a bench topic (the bench cannot run)."""


# Kafka's UNKNOWN_TOPIC_OR_PARTITION: deleting a topic whose creation failed is not an error.
UNKNOWN_TOPIC = 3


def _errors(response: object, *, ignore: frozenset[int] = frozenset()) -> list[str]:
    # CreateTopics/DeleteTopics responses list (topic, error_code, ...) per topic; 0 is success.
    found = getattr(response, "topic_errors", None) or getattr(response, "topic_error_codes", [])
    return [f"{e[0]}: error {e[1]}" for e in found if e[1] != 0 and e[1] not in ignore]


async def create_topic(
    bootstrap: str, name: str, partitions: int, probes: Sequence[event_pb2.Event]
) -> None:
    """Creates the topic and writes `probes[p]` to partition p, so every partition's leader
    serves before a round starts (a fresh topic answers NotLeaderForPartition for a moment,
    and the clients' retry backoff would otherwise land inside the timed part)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="qmtl-bench-events")
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()
    if failed := _errors(response):
        raise BrokerSetupError(f"could not create {name}: {'; '.join(failed)}")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="qmtl-bench-events")
    await producer.start()
    # The probes expect NotLeaderForPartition retries: keep aiokafka's warnings about them out
    # of the output, where a warning then means trouble inside a round.
    aiokafka_log = logging.getLogger("aiokafka")
    level = aiokafka_log.level
    aiokafka_log.setLevel(logging.ERROR)
    try:
        for partition, probe in enumerate(probes[:partitions]):
            wire = encode(probe)
            headers = list(wire.headers)
            await producer.send_and_wait(
                name, value=wire.value, key=wire.key, headers=headers, partition=partition
            )
    finally:
        aiokafka_log.setLevel(level)
        await producer.stop()


async def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    if not names:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="qmtl-bench-events")
    await admin.start()
    try:
        response = await admin.delete_topics(list(names))
    finally:
        await admin.close()
    if failed := _errors(response, ignore=frozenset({UNKNOWN_TOPIC})):
        raise BrokerSetupError(f"could not delete bench topics: {'; '.join(failed)}")
