"""The aiokafka event bus (docs/operations/kafka.md), on the shared Kafka machinery.

`KafkaBus` is the machinery, written once against a `Codec` (codec.py) and shared with the
RecordBus (qmtl.runtime.recordbus.kafka): one idempotent producer per bus, acks=all, the
default partitioner over the record's partition key (the key unless the codec sets another).
Sending waits for every acknowledgement and retries what failed, with backoff, up to
`settings.attempts` times; then it raises a retryable EventBusError. A retried send may
deliver a message twice (the first try may have landed without its acknowledgement arriving):
consumers dedupe (`Event.id`, a Record's dedupe key).

`KafkaEventBus` is that machinery with the Event codec: key = `Event.subject` (one subject
stays on one partition, in order). Subscribing: `kafka_consumer.KafkaSubscription`, one
consumer per subscription.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Generic

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, UnknownTopicOrPartitionError
from aiokafka.partitioner import DefaultPartitioner

from qmtl.events.v1 import event_pb2
from qmtl.runtime import metrics

from .codec import Codec, D, DeliveryHandler, M
from .errors import EventBusError, Operation
from .kafka_consumer import KafkaSubscription
from .kafka_settings import KafkaEventBusSettings
from .model import EVENT_CODEC, Delivery, WireRecord, check_subscribable

log = logging.getLogger(__name__)

_PARTITIONER = DefaultPartitioner()


async def start_producer(
    bootstrap: str, client_id: str, settings: KafkaEventBusSettings
) -> AIOKafkaProducer:
    """An idempotent, acks=all producer that has reached the broker; a retryable
    EventBusError if it did not within `settings.request_timeout_ms`."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.linger_ms,
        max_batch_size=settings.max_batch_bytes,
        request_timeout_ms=settings.request_timeout_ms,
        retry_backoff_ms=int(settings.backoff_base_s * 1000),
    )
    try:
        await asyncio.wait_for(producer.start(), settings.request_timeout_ms / 1000)
    except (KafkaError, TimeoutError, OSError) as exc:
        await producer.stop()
        raise EventBusError(
            f"cannot reach Kafka at {bootstrap}: {exc!r}", operation="connect"
        ) from exc
    return producer


class KafkaBus(Generic[M, D]):
    """The Kafka machinery of a bus whose messages `codec` encodes."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        bootstrap: str,
        client_id: str,
        settings: KafkaEventBusSettings,
        codec: Codec[M, D],
    ) -> None:
        self._producer = producer
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.settings = settings
        self.codec = codec
        self._subscriptions: set[KafkaSubscription[M, D]] = set()
        self._closed = False

    async def send_messages(
        self, topic: str, messages: Sequence[M], *, operation: Operation
    ) -> None:
        self._check_open(topic)
        self.codec.check_publishable(topic, messages)
        encode = self.codec.encode
        await self.send_records(topic, [encode(m) for m in messages], operation=operation)

    async def subscribe(
        self, topics: Sequence[str], group: str, handler: DeliveryHandler[D]
    ) -> KafkaSubscription[M, D]:
        self._check_open(*topics)
        check_subscribable(topics, group)
        subscription = KafkaSubscription(self, tuple(topics), group, handler)
        await subscription.start()
        self._subscriptions.add(subscription)
        return subscription

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.stop()
        await self._producer.stop()

    def forget(self, subscription: KafkaSubscription[M, D]) -> None:
        self._subscriptions.discard(subscription)

    async def send_records(
        self,
        topic: str,
        records: Sequence[WireRecord],
        *,
        operation: Operation,
    ) -> None:
        """Sends `records` to `topic` and waits for every acknowledgement, retrying those that
        failed (in their order) with backoff; EventBusError after `settings.attempts` tries."""
        await self._check_topic(topic, operation)
        pending = list(records)
        attempt = 0
        while True:
            attempt += 1
            failed, error = await self._send_once(topic, pending)
            if not failed:
                return
            assert error is not None
            retryable = (
                not isinstance(error, KafkaError)
                or error.retriable
                or isinstance(error, KafkaTimeoutError)
            )
            if not retryable or attempt >= self.settings.attempts:
                raise EventBusError(
                    f"{len(failed)} of {len(records)} records to {topic!r} not acknowledged "
                    f"after {attempt} attempts: {error!r}",
                    operation=operation,
                    topics=(topic,),
                    retryable=retryable,
                    attempts=attempt,
                ) from error
            log.warning(
                "eventbus: %d records to %s not acknowledged (attempt %d): %r; retrying",
                len(failed),
                topic,
                attempt,
                error,
            )
            pending = failed
            await asyncio.sleep(self.settings.backoff(attempt))

    async def _check_topic(self, topic: str, operation: Operation) -> None:
        """Fails fast, typed, for a topic the broker does not have: aiokafka would otherwise
        wait for it a request timeout per attempt. Known topics are answered from the
        producer's metadata cache, without a request."""
        try:
            await self._producer.partitions_for(topic)
            return
        except UnknownTopicOrPartitionError:
            pass
        except (KafkaError, TimeoutError) as exc:
            raise EventBusError(
                f"no metadata for {topic!r}: {exc!r}", operation=operation, topics=(topic,)
            ) from exc
        try:
            # Not found, or was the broker away while we asked? Ask once more, plainly.
            cluster = await self._producer.client.fetch_all_metadata()
        except (KafkaError, TimeoutError) as exc:
            raise EventBusError(
                f"no metadata for {topic!r}: {exc!r}", operation=operation, topics=(topic,)
            ) from exc
        if topic not in cluster.topics():
            raise EventBusError(
                f"topic {topic!r} does not exist (Kafka auto-create is off; ensure it first: "
                "event_topic_specs for event topics, the DAG Manager for node topics)",
                operation=operation,
                topics=(topic,),
                retryable=False,
                code="E_NOT_FOUND",
            )

    async def _send_once(
        self, topic: str, records: Sequence[WireRecord]
    ) -> tuple[list[WireRecord], BaseException | None]:
        """The records not acknowledged within one request timeout (all from the first that
        could not be enqueued), and the first error. aiokafka would keep retrying a batch
        while the broker is away; the deadline bounds each attempt so `publish` is bounded."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.request_timeout_ms / 1000
        futures: list[asyncio.Future[object]] = []
        error: BaseException | None = None
        partitions = await self._partitions(topic, records)
        # One deadline around the whole enqueue loop: a wait_for per record would wrap each
        # send in a task, and those extra loop turns cut publish throughput to ~0.6x of raw
        # aiokafka (bench/events).
        try:
            async with asyncio.timeout_at(deadline):
                for record in records:
                    future = await self._producer.send(
                        topic,
                        value=record.value,
                        key=record.key,
                        headers=list(record.headers),
                        partition=_partition(record, partitions),
                    )
                    # A late outcome of an attempt given up on is not an error anyone awaits.
                    future.add_done_callback(_consume_outcome)
                    futures.append(future)
        except (KafkaError, TimeoutError) as exc:
            error = exc
        if futures:
            await asyncio.wait(futures, timeout=max(0.0, deadline - loop.time()))
        failed: list[WireRecord] = []
        for record, future in zip(records, futures, strict=False):
            outcome = future.exception() if future.done() else _unacknowledged(topic)
            if outcome is not None:
                failed.append(record)
                error = error or outcome
        failed.extend(records[len(futures) :])
        return failed, error

    async def _partitions(self, topic: str, records: Sequence[WireRecord]) -> list[int]:
        """The topic's partitions when a record is partitioned by other than its key (from the
        producer's metadata cache, which `_check_topic` filled); else none are needed."""
        if all(record.partition_key is None for record in records):
            return []
        return sorted(await self._producer.partitions_for(topic))

    def _check_open(self, *topics: str) -> None:
        if self._closed:
            raise EventBusError(
                "the event bus is closed", operation="publish", topics=topics, retryable=False
            )

    @property
    def producer(self) -> AIOKafkaProducer:
        return self._producer


class KafkaEventBus(KafkaBus[event_pb2.Event, Delivery]):
    def __init__(
        self,
        producer: AIOKafkaProducer,
        bootstrap: str,
        client_id: str,
        settings: KafkaEventBusSettings,
    ) -> None:
        # Use `connect`, which starts the producer.
        super().__init__(producer, bootstrap, client_id, settings, EVENT_CODEC)

    @classmethod
    async def connect(
        cls,
        bootstrap: str,
        *,
        client_id: str = "qmtl",
        settings: KafkaEventBusSettings | None = None,
    ) -> KafkaEventBus:
        """A bus whose producer has reached the broker; a retryable EventBusError if it did not
        within `settings.request_timeout_ms`."""
        settings = settings or KafkaEventBusSettings()
        producer = await start_producer(bootstrap, client_id, settings)
        return cls(producer, bootstrap, client_id, settings)

    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None:
        try:
            await self.send_messages(topic, events, operation="publish")
        except BaseException:
            metrics.EVENT_PUBLISH_FAILURES.labels(topic).inc()
            raise
        metrics.EVENTS_PUBLISHED.labels(topic).inc(len(events))


def _partition(record: WireRecord, partitions: list[int]) -> int | None:
    """Kafka's default partitioner (murmur2) over the partition key, so a Record lands where a
    plain producer keyed by its partition key would put it; None lets the producer hash the key."""
    if record.partition_key is None or not partitions:
        return None
    return int(_PARTITIONER(record.partition_key, partitions, partitions))


def _consume_outcome(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()


def _unacknowledged(topic: str) -> BaseException:
    error: BaseException = KafkaTimeoutError(
        f"no acknowledgement from {topic!r} within the request timeout"
    )
    return error
