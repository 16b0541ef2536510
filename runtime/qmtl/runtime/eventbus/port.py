"""The EventBus port: publish events to a topic, subscribe a handler in a consumer group.

Adapters: `InMemoryEventBus` (embedded default and tests) and `KafkaEventBus` (aiokafka);
tests/contract/test_eventbus_contract.py holds both to the same behaviour:
- `publish` returns once the broker acknowledged every event (Kafka: acks=all); events of one
  `subject` keep their order; a failure raises EventBusError (`retryable` when a later call may
  succeed) and some events may have been delivered already, so delivery is at least once;
- a group's offset for an event is committed only after its handler returned; an event whose
  handler raised, or that was in flight when a subscriber stopped or died, is delivered again
  to the group's next subscriber, so handlers dedupe by `Event.id` (`Deduper`);
- a handler that raises stops its subscription (`Subscription.failure` holds why); the service
  decides whether to resubscribe;
- every group gets every event;
- a record that is not an Event is copied to `<topic>.dlq` with the reason and committed past,
  so it neither stops the consumer nor blocks its partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from qmtl.events.v1 import event_pb2

from .model import Handler


class Subscription(Protocol):
    @property
    def failure(self) -> BaseException | None:
        """What stopped the subscription on its own (a handler's exception, a broker error the
        adapter gave up on); None while it runs or after a plain `stop()`."""
        ...

    @property
    def running(self) -> bool: ...

    async def stop(self) -> None:
        """Stops fetching, lets the handler in flight finish, commits what was handled and
        leaves the group; what was not handled goes to the group's other subscribers."""
        ...

    async def wait(self) -> None:
        """Returns when the subscription stopped; raises its `failure` if it has one."""
        ...


class EventBus(Protocol):
    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None:
        """Publishes `events` to `topic` in order, keyed by subject; returns once all are
        acknowledged. InvalidEventError (nothing sent) for an event without id, type or
        subject or for a dead-letter topic."""
        ...

    async def subscribe(self, topics: Sequence[str], group: str, handler: Handler) -> Subscription:
        """Starts delivering the events of `topics` to `handler`, one at a time per
        subscription, from the group's committed offsets (the earliest retained event for a new
        group). Returns once the subscription runs."""
        ...

    async def aclose(self) -> None:
        """Stops every subscription and releases the connections."""
        ...
