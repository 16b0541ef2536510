"""The in-memory event bus: the embedded default, and the reference the contract suite holds
the Kafka adapter to. `InMemoryBus` is the machinery, written once against a `Codec` and
shared with the in-memory RecordBus (qmtl.runtime.recordbus.memory).

It behaves like a Kafka topic where the contract can tell: each topic is `partitions` logs
(a record's partition is a stable hash of its partition key, an event's subject, so one
subject stays ordered), each
group has committed offsets per partition, a partition belongs to one subscription of a group
at a time (handed to another when its owner stops), and an offset is committed only after the
handler returned. Topics are created on first use. Nothing is kept across a restart.
`publish_raw` writes bytes as a foreign producer would, for the dead-letter tests.
"""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic

from qmtl.events.v1 import event_pb2

from .codec import Codec, D, DeliveryHandler, M
from .errors import EventBusError
from .model import (
    EVENT_CODEC,
    Delivery,
    UndecodableRecord,
    WireRecord,
    check_subscribable,
    dead_letter_headers,
)
from .topics import dead_letter_topic

DEFAULT_MEMORY_PARTITIONS = 3

TopicPartition = tuple[str, int]


def partition_for(key: bytes | None, partitions: int) -> int:
    """A stable partition for `key` (crc32, the same in every process); no key goes to 0."""
    return 0 if not key else zlib.crc32(key) % partitions


@dataclass
class _Group:
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    owners: dict[TopicPartition, _MemorySubscription[Any, Any]] = field(default_factory=dict)


class InMemoryBus(Generic[M, D]):
    """The in-memory machinery of a bus whose messages `codec` encodes."""

    def __init__(self, codec: Codec[M, D], *, partitions: int = DEFAULT_MEMORY_PARTITIONS) -> None:
        if partitions < 1:
            raise EventBusError(
                f"partitions must be at least 1, got {partitions}",
                operation="connect",
                retryable=False,
                code="E_VALIDATION",
                field="partitions",
            )
        self.partitions = partitions
        self.codec = codec
        self._logs: dict[str, list[list[WireRecord]]] = {}
        self._groups: dict[str, _Group] = {}
        self._subscriptions: set[_MemorySubscription[M, D]] = set()
        self._changed = asyncio.Condition()
        # Bumped by every change a waiting subscription may care about; a subscription waits
        # for it to move past the value it saw before scanning, so no change is missed.
        self.version = 0
        self._closed = False

    # --- the port ------------------------------------------------------------------------

    async def send_messages(self, topic: str, messages: Sequence[M]) -> None:
        self._check_open("publish", topic)
        self.codec.check_publishable(topic, messages)
        for message in messages:
            self._append(topic, self.codec.encode(message))
        await self._notify()

    async def subscribe(
        self, topics: Sequence[str], group: str, handler: DeliveryHandler[D]
    ) -> _MemorySubscription[M, D]:
        self._check_open("subscribe", *topics)
        check_subscribable(topics, group)
        subscription = _MemorySubscription(self, tuple(topics), group, handler)
        self._subscriptions.add(subscription)
        subscription.start()
        return subscription

    async def aclose(self) -> None:
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.stop()

    # --- test and inspection helpers -------------------------------------------------------

    async def publish_raw(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Appends a record as bytes, as a producer that is not this bus could."""
        self._check_open("publish", topic)
        self._append(topic, WireRecord(key, value, tuple(headers)))
        await self._notify()

    def records(self, topic: str) -> list[WireRecord]:
        """Every record of `topic`, partition by partition (a dead-letter topic too)."""
        return [record for log in self._logs.get(topic, []) for record in log]

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed offsets on `topic`, by partition (the next offset to read)."""
        found = self._groups.get(group)
        if found is None:
            return {}
        return {p: offset for (t, p), offset in found.committed.items() if t == topic}

    # --- internals ----------------------------------------------------------------------

    def _check_open(self, operation: str, *topics: str) -> None:
        if self._closed:
            raise EventBusError(
                "the event bus is closed",
                operation="publish" if operation == "publish" else "subscribe",
                topics=topics,
                retryable=False,
            )

    def _log(self, topic: str) -> list[list[WireRecord]]:
        return self._logs.setdefault(topic, [[] for _ in range(self.partitions)])

    def _append(self, topic: str, record: WireRecord) -> None:
        self._log(topic)[partition_for(record.partitioned_by, self.partitions)].append(record)

    async def _notify(self) -> None:
        self.version += 1
        async with self._changed:
            self._changed.notify_all()

    def _claim(self, subscription: _MemorySubscription[M, D]) -> list[TopicPartition]:
        """The partitions `subscription` owns, after taking every unowned one of its topics."""
        group = self._groups.setdefault(subscription.group, _Group())
        mine: list[TopicPartition] = []
        for topic in subscription.topics:
            for partition in range(len(self._log(topic))):
                tp = (topic, partition)
                owner = group.owners.setdefault(tp, subscription)
                if owner is subscription:
                    mine.append(tp)
        return mine

    async def _release(self, subscription: _MemorySubscription[M, D]) -> None:
        group = self._groups.get(subscription.group)
        if group is not None:
            for tp, owner in list(group.owners.items()):
                if owner is subscription:
                    del group.owners[tp]
        self._subscriptions.discard(subscription)
        await self._notify()

    async def _deliver_from(
        self, subscription: _MemorySubscription[M, D], tp: TopicPartition
    ) -> bool:
        """Hands the partition's next uncommitted record to the subscription; False when there
        is none."""
        group = self._groups[subscription.group]
        offset = group.committed.get(tp, 0)
        log = self._log(tp[0])[tp[1]]
        if offset >= len(log):
            return False
        record = log[offset]
        try:
            message = self.codec.decode(record.value, record.headers)
        except UndecodableRecord as bad:
            headers = dead_letter_headers(
                record.headers,
                reason=bad.reason,
                topic=tp[0],
                partition=tp[1],
                offset=offset,
                group=subscription.group,
            )
            self._append(
                dead_letter_topic(tp[0]), WireRecord(record.key, record.value, tuple(headers))
            )
        else:
            await subscription.handler(self.codec.delivery(message, tp[0], tp[1], offset))
        group.committed[tp] = offset + 1
        return True


class InMemoryEventBus(InMemoryBus[event_pb2.Event, Delivery]):
    def __init__(self, *, partitions: int = DEFAULT_MEMORY_PARTITIONS) -> None:
        super().__init__(EVENT_CODEC, partitions=partitions)

    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None:
        await self.send_messages(topic, events)


class _MemorySubscription(Generic[M, D]):
    def __init__(
        self,
        bus: InMemoryBus[M, D],
        topics: tuple[str, ...],
        group: str,
        handler: DeliveryHandler[D],
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.group = group
        self.handler = handler
        self._stopping = False
        self._failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"eventbus-memory-{self.group}")

    async def stop(self) -> None:
        self._stopping = True
        await self.bus._notify()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._failure is not None:
            raise self._failure

    def _woken(self, seen: int) -> bool:
        return self._stopping or self.bus.version != seen

    async def _run(self) -> None:
        try:
            while not self._stopping:
                seen = self.bus.version
                progressed = False
                for tp in self.bus._claim(self):
                    while not self._stopping and await self.bus._deliver_from(self, tp):
                        progressed = True
                if not progressed:
                    async with self.bus._changed:
                        await self.bus._changed.wait_for(functools.partial(self._woken, seen))
        except Exception as exc:  # the handler's: it stops this subscription, uncommitted
            self._failure = exc
        finally:
            await self.bus._release(self)
