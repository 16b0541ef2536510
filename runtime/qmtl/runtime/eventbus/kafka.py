"""The aiokafka event bus (docs/operations/kafka.md).

Publishing: one idempotent producer per bus, acks=all, key = `Event.subject` (the default
partitioner hashes it, so one subject stays on one partition, in order). `publish` sends the
whole batch, waits for every acknowledgement and retries what failed, with backoff, up to
`settings.attempts` times; then it raises a retryable EventBusError. A retried publish may
deliver an event twice (the first try may have landed without its acknowledgement arriving):
consumers dedupe by `Event.id`.

Subscribing: `kafka_consumer.KafkaSubscription`, one consumer per subscription.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, UnknownTopicOrPartitionError

from qmtl.events.v1 import event_pb2

from .errors import EventBusError, Operation
from .kafka_consumer import KafkaSubscription
from .kafka_settings import KafkaEventBusSettings
from .model import Handler, WireRecord, check_publishable, check_subscribable, encode

log = logging.getLogger(__name__)


class KafkaEventBus:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        bootstrap: str,
        client_id: str,
        settings: KafkaEventBusSettings,
    ) -> None:
        # Use `connect`, which starts the producer.
        self._producer = producer
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.settings = settings
        self._subscriptions: set[KafkaSubscription] = set()
        self._closed = False

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
        return cls(producer, bootstrap, client_id, settings)

    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None:
        self._check_open(topic)
        check_publishable(topic, events)
        await self.send_records(topic, [encode(event) for event in events], operation="publish")

    async def subscribe(
        self, topics: Sequence[str], group: str, handler: Handler
    ) -> KafkaSubscription:
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

    def forget(self, subscription: KafkaSubscription) -> None:
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
                f"topic {topic!r} does not exist (Kafka auto-create is off; ensure it with "
                "event_topic_specs)",
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
        # One deadline around the whole enqueue loop: a wait_for per record would wrap each
        # send in a task, and those extra loop turns cut publish throughput to ~0.6x of raw
        # aiokafka (bench/events).
        try:
            async with asyncio.timeout_at(deadline):
                for record in records:
                    future = await self._producer.send(
                        topic, value=record.value, key=record.key, headers=list(record.headers)
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

    def _check_open(self, *topics: str) -> None:
        if self._closed:
            raise EventBusError(
                "the event bus is closed", operation="publish", topics=topics, retryable=False
            )

    @property
    def producer(self) -> AIOKafkaProducer:
        return self._producer


def _consume_outcome(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()


def _unacknowledged(topic: str) -> BaseException:
    error: BaseException = KafkaTimeoutError(
        f"no acknowledgement from {topic!r} within the request timeout"
    )
    return error
