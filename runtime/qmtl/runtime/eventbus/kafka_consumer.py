"""One subscription of a Kafka bus (the EventBus's or the RecordBus's): a consumer in a group,
committing by hand.

The loop fetches up to `max_poll_records`, hands the records of each partition to the handler
one at a time, then commits that partition past the last one handled. So a crash, a SIGKILL or
a rebalance redelivers at most the records handled since the last commit (the handler dedupes
them: Event.id, a Record's dedupe key). A record the bus's codec cannot decode is copied to
`<topic>.dlq` with the reason, and only once that write is acknowledged is it counted as
handled: it never stops the consumer nor blocks its partition, and is never dropped
unrecorded.

A commit that fails while the broker is away is not fatal: offsets are cumulative, so the next
commit covers it; only `stop()` insists (bounded retries) on the last one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Generic

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError

from .codec import D, DeliveryHandler, M
from .errors import EventBusError
from .model import UndecodableRecord, WireRecord, dead_letter_headers
from .topics import dead_letter_topic

if TYPE_CHECKING:
    from .kafka import KafkaBus

log = logging.getLogger(__name__)


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was handled before a partition moves to another member, so the new owner
    redelivers as little as possible."""

    def __init__(self, subscription: KafkaSubscription[Any, Any]) -> None:
        self.subscription = subscription

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.subscription.commit_pending(only=set(revoked))
        # Whatever could not be committed is the new owner's to redeliver; committing it later
        # could move that owner's offset.
        self.subscription.forget_pending(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


class KafkaSubscription(Generic[M, D]):
    def __init__(
        self,
        bus: KafkaBus[M, D],
        topics: tuple[str, ...],
        group: str,
        handler: DeliveryHandler[D],
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.group = group
        self.handler = handler
        settings = bus.settings
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bus.bootstrap,
            client_id=f"{bus.client_id}-{group}",
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.max_poll_records,
            request_timeout_ms=settings.request_timeout_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            retry_backoff_ms=int(settings.backoff_base_s * 1000),
        )
        # Next offset to commit per partition: handled but not yet committed.
        self._pending: dict[TopicPartition, int] = {}
        self._stopping = False
        self._failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        timeout = self.bus.settings.request_timeout_ms / 1000
        try:
            await asyncio.wait_for(self._consumer.start(), timeout)
            existing = await asyncio.wait_for(self._consumer.topics(), timeout)
        except (KafkaError, TimeoutError, OSError) as exc:
            await self._consumer.stop()
            raise EventBusError(
                f"cannot subscribe group {self.group!r} to {list(self.topics)}: {exc!r}",
                operation="subscribe",
                topics=self.topics,
            ) from exc
        missing = [topic for topic in self.topics if topic not in existing]
        if missing:
            # Kafka would wait silently for them to appear: a misspelt name would look idle.
            await self._consumer.stop()
            raise EventBusError(
                f"topics {missing} do not exist (auto-create is off; ensure them first: "
                "event_topic_specs for event topics, the DAG Manager for node topics)",
                operation="subscribe",
                topics=missing,
                retryable=False,
                code="E_NOT_FOUND",
            )
        self._consumer.subscribe(list(self.topics), listener=_CommitOnRevoke(self))
        self._task = asyncio.create_task(self._run(), name=f"eventbus-kafka-{self.group}")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._failure is not None:
            raise self._failure

    async def _run(self) -> None:
        settings = self.bus.settings
        try:
            while not self._stopping:
                try:
                    batches = await self._consumer.getmany(timeout_ms=settings.fetch_wait_ms)
                except KafkaError as exc:
                    if not exc.retriable:
                        raise
                    log.warning("eventbus: fetch for group %s failed: %r", self.group, exc)
                    await asyncio.sleep(settings.backoff(1))
                    continue
                for tp, records in batches.items():
                    if self._stop_requested():
                        break
                    await self._handle(tp, records)
                    await self.commit_pending(only={tp})
        except Exception as exc:  # a handler's or the broker's: stops this subscription
            self._failure = exc
            log.error("eventbus: subscription of group %s stopped: %r", self.group, exc)
        finally:
            await self._commit_on_stop()
            await self._consumer.stop()
            self.bus.forget(self)

    def _stop_requested(self) -> bool:
        # A method, not the attribute: `stop()` sets it while the loop awaits.
        return self._stopping

    async def _handle(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        for record in records:
            if self._stopping or tp not in self._consumer.assignment():
                # Stopping, or the partition went to another member in a rebalance: the rest
                # of this fetch is redelivered from the last commit.
                return
            headers = list(record.headers or ())
            try:
                message = self.bus.codec.decode(record.value, headers)
            except UndecodableRecord as bad:
                await self._dead_letter(record, headers, bad.reason)
            else:
                delivery = self.bus.codec.delivery(
                    message, record.topic, record.partition, record.offset
                )
                await self.handler(delivery)
            self._pending[tp] = record.offset + 1

    async def _dead_letter(
        self, record: ConsumerRecord, headers: list[tuple[str, bytes]], reason: str
    ) -> None:
        log.warning(
            "eventbus: %s[%d]@%d is not a %s (%s); dead-lettered",
            record.topic,
            record.partition,
            record.offset,
            self.bus.codec.message_name,
            reason,
        )
        letter = WireRecord(
            record.key,
            record.value,
            tuple(
                dead_letter_headers(
                    headers,
                    reason=reason,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    group=self.group,
                )
            ),
        )
        await self.bus.send_records(
            dead_letter_topic(record.topic), [letter], operation="dead_letter"
        )

    def forget_pending(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._pending.pop(tp, None)

    async def commit_pending(self, *, only: set[TopicPartition] | None = None) -> bool:
        """Commits the handled offsets (of `only`, else all); True when nothing is left.
        A failed commit keeps them pending for the next one."""
        owned = self._consumer.assignment()
        # Handled on a partition that has since moved to another member: not ours to commit.
        self.forget_pending({tp for tp in self._pending if tp not in owned})
        offsets = {tp: offset for tp, offset in self._pending.items() if only is None or tp in only}
        if not offsets:
            return True
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # The partitions went to another member; it redelivers from the last commit.
            log.warning("eventbus: commit for group %s refused (%r)", self.group, exc)
        except KafkaError as exc:
            log.warning("eventbus: commit for group %s failed, kept pending: %r", self.group, exc)
            return False
        for tp, offset in offsets.items():
            if self._pending.get(tp) == offset:
                del self._pending[tp]
        return True

    async def _commit_on_stop(self) -> None:
        settings = self.bus.settings
        for attempt in range(1, settings.attempts + 1):
            if await self.commit_pending():
                return
            await asyncio.sleep(settings.backoff(attempt))
        log.error(
            "eventbus: group %s stopped with uncommitted offsets %s; they are redelivered",
            self.group,
            self._pending,
        )
