"""The RecordBus port: node output records (`qmtl.data.v1.Record`) on node topics.

The EventBus's semantics, on Records (they are not Events, so the bus is its own port over the
same machinery, qmtl.runtime.eventbus.{kafka,memory}); adapters `InMemoryRecordBus` and
`KafkaRecordBus`, held to one contract (tests/contract/test_recordbus_contract.py):
- `produce` returns once every record is acknowledged (Kafka: acks=all, idempotent producer);
  key = `records.message_key`, partition chosen by `records.partition_key`, so the records of
  one (node, interval, bucket) stay on one partition in order; a failure raises a retryable
  EventBusError and some records may have landed: delivery is at least once;
- a group's offset is committed only after its handler returned (a handler that produces
  commits after producing); what was in flight when a subscriber stopped or died is delivered
  again, so handlers dedupe by `records.dedupe_key`;
- a handler that raises stops its subscription (`Subscription.failure`);
- every group gets every record; an undecodable record goes to `<topic>.dlq`;
- `read` returns what a topic retains, without a group (the runner rebuilds its windows and
  learns what it already produced from it; docs/operations/data-plane.md, "Recovery").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from qmtl.data.v1 import record_pb2
from qmtl.runtime.eventbus.port import Subscription

from .codec import RecordDelivery

RecordHandler = Callable[[RecordDelivery], Awaitable[None]]


class RecordBus(Protocol):
    async def produce(self, topic: str, records: Sequence[record_pb2.Record]) -> None:
        """Produces `records` to `topic` in order; returns once all are acknowledged.
        InvalidEventError (nothing sent) for a record whose keys cannot be built or for a
        dead-letter topic."""
        ...

    async def subscribe(
        self, topics: Sequence[str], group: str, handler: RecordHandler
    ) -> Subscription:
        """Delivers the records of `topics` to `handler`, one at a time per subscription, from
        the group's committed offsets (the earliest retained record for a new group)."""
        ...

    async def read(self, topic: str) -> list[RecordDelivery]:
        """Every record `topic` retains up to its end at the time of the call, partition by
        partition in offset order, read without a group (no offset moves). Records that do
        not decode are left out (subscribers dead-letter them)."""
        ...

    async def aclose(self) -> None:
        """Stops every subscription and releases the connections."""
        ...
