"""The aiokafka RecordBus: the shared Kafka machinery (qmtl.runtime.eventbus.kafka) with the
Record codec. Same producer and consumer settings as the event bus (acks=all, idempotent,
commit only after the handler; docs/operations/kafka.md), same typed errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from qmtl.data.v1 import record_pb2
from qmtl.runtime.eventbus.errors import EventBusError
from qmtl.runtime.eventbus.kafka import KafkaBus, start_producer
from qmtl.runtime.eventbus.kafka_settings import KafkaEventBusSettings
from qmtl.runtime.eventbus.model import UndecodableRecord

from .codec import RECORD_CODEC, RecordDelivery


class KafkaRecordBus(KafkaBus[record_pb2.Record, RecordDelivery]):
    def __init__(
        self,
        producer: AIOKafkaProducer,
        bootstrap: str,
        client_id: str,
        settings: KafkaEventBusSettings,
    ) -> None:
        # Use `connect`, which starts the producer.
        super().__init__(producer, bootstrap, client_id, settings, RECORD_CODEC)

    @classmethod
    async def connect(
        cls,
        bootstrap: str,
        *,
        client_id: str = "qmtl-records",
        settings: KafkaEventBusSettings | None = None,
    ) -> KafkaRecordBus:
        """A bus whose producer has reached the broker; a retryable EventBusError if it did not
        within `settings.request_timeout_ms`."""
        settings = settings or KafkaEventBusSettings()
        producer = await start_producer(bootstrap, client_id, settings)
        return cls(producer, bootstrap, client_id, settings)

    async def produce(self, topic: str, records: Sequence[record_pb2.Record]) -> None:
        await self.send_messages(topic, records, operation="publish")

    async def read(self, topic: str) -> list[RecordDelivery]:
        self._check_open(topic)
        # Typed E_NOT_FOUND for a missing topic; the partitions from the producer's metadata.
        await self._check_topic(topic, "subscribe")
        partitions = sorted(await self.producer.partitions_for(topic))
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=f"{self.client_id}-read",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=self.settings.request_timeout_ms,
        )
        timeout = self.settings.request_timeout_ms / 1000
        try:
            await asyncio.wait_for(consumer.start(), timeout)
            try:
                reading = _read_to_end(consumer, topic, partitions)
                return await asyncio.wait_for(reading, 4 * timeout)
            finally:
                await consumer.stop()
        except (KafkaError, TimeoutError, OSError) as exc:
            raise EventBusError(
                f"cannot read {topic!r}: {exc!r}", operation="subscribe", topics=(topic,)
            ) from exc


async def _read_to_end(
    consumer: AIOKafkaConsumer, topic: str, partitions: list[int]
) -> list[RecordDelivery]:
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    found: dict[int, list[RecordDelivery]] = {tp.partition: [] for tp in tps}
    remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=500)
        for tp, records in batches.items():
            for raw in records:
                if raw.offset >= ends[tp]:
                    break
                try:
                    record = RECORD_CODEC.decode(raw.value, list(raw.headers or ()))
                except UndecodableRecord:
                    continue
                found[tp.partition].append(RecordDelivery(record, topic, tp.partition, raw.offset))
        remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    return [delivery for partition in sorted(found) for delivery in found[partition]]
