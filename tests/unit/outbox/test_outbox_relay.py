"""OutboxRelay on the in-memory graph store and event bus: publish, then ack, at least once.

The Neo4j store, a real Kafka broker and a SIGKILLed producer: tests/integration/
test_outbox_neo4j_kafka.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from qmtl.events.v1 import event_pb2, queue_events_pb2
from qmtl.runtime.eventbus import (
    DAG_EVENTS,
    OPS_EVENTS,
    Deduper,
    Delivery,
    EventBusError,
    InMemoryEventBus,
    decode,
)
from qmtl.runtime.graphstore import MAX_BATCH, InMemoryGraphStore, OutboxMessage
from qmtl.runtime.outbox import (
    RELAY_BACKOFF_BASE_S,
    RELAY_BACKOFF_CAP_S,
    OutboxConfigError,
    OutboxRelay,
    backoff_delay,
)
from qmtl.runtime.restart import Restart
from qmtl.services.dag_manager.events import make_event
from qmtl.services.dag_manager.relay import outbox_message
from tests.contract.graphstore_support import ManualClock
from tests.polling import eventually


def always(entry: OutboxMessage) -> Callable[[int], OutboxMessage]:
    """An announcement of `entry` whatever the version."""
    return lambda _: entry


def queue_event(version: int, subject: str = "tags/btc/60") -> event_pb2.Event:
    payload = queue_events_pb2.QueueUpdated(tags=["btc"], interval=60, version=version)
    return make_event(
        "queue_updated", payload, subject=subject, idempotency_key=f"{subject}:{version}"
    )


async def write(store: InMemoryGraphStore, *events: event_pb2.Event) -> None:
    """Each event with a state change of its own (a tag-query answer bump)."""
    for event in events:
        await store.record_answer(event.id, "etag", announce=always(outbox_message(event)))


def published(bus: InMemoryEventBus, topic: str = DAG_EVENTS) -> list[event_pb2.Event]:
    return [decode(r.value, r.headers) for r in bus.records(topic)]


@pytest.fixture
def store() -> InMemoryGraphStore:
    return InMemoryGraphStore(clock=ManualClock())


async def test_drain_publishes_every_pending_entry_then_acks_it(store: InMemoryGraphStore) -> None:
    events = [queue_event(v) for v in (1, 2, 3)]
    await write(store, *events)
    bus = InMemoryEventBus(partitions=1)
    relay = OutboxRelay(store, bus, page=2)  # two pages

    assert await relay.drain() == 3
    assert [e.id for e in published(bus)] == [e.id for e in events]
    assert published(bus) == events
    assert await store.outbox_pending() == []
    assert await relay.drain() == 0
    assert relay.relayed == 3


class CrashOnAck(InMemoryGraphStore):
    """The relay's process dies after the broker acked and before the outbox ack."""

    crash = True

    async def outbox_ack(self, ids: Sequence[str]) -> int:
        if self.crash:
            self.crash = False
            raise SystemExit("relay killed")
        return await super().outbox_ack(ids)


async def test_a_relay_dying_before_its_ack_gets_the_same_event_id_republished() -> None:
    store = CrashOnAck(clock=ManualClock())
    event = queue_event(1)
    await write(store, event)
    bus = InMemoryEventBus(partitions=1)

    with pytest.raises(SystemExit):
        await OutboxRelay(store, bus).drain()
    assert await OutboxRelay(store, bus).drain() == 1  # a fresh relay, as after a restart

    ids = [e.id for e in published(bus)]
    assert ids == [event.id, event.id]  # at least once...
    effects: list[str] = []
    deduper = Deduper()
    for delivered in published(bus):  # ...and once for a consumer deduping by Event.id
        if not deduper.seen(delivered.id):
            effects.append(delivered.id)
            deduper.mark(delivered.id)
    assert effects == [event.id]
    assert await store.outbox_pending() == []


class DownBus:
    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None:
        raise EventBusError("broker down", operation="publish", retryable=True)


async def test_a_failed_publish_raises_and_acks_nothing(store: InMemoryGraphStore) -> None:
    await write(store, queue_event(1))
    relay = OutboxRelay(store, DownBus())
    with pytest.raises(EventBusError):
        await relay.drain()
    assert len(await store.outbox_pending()) == 1
    assert relay.relayed == 0


async def test_entries_keep_their_order_across_topics(store: InMemoryGraphStore) -> None:
    first, second = queue_event(1), queue_event(2)
    alert = make_event(
        "service_restarted",
        event_pb2.Event().service_restarted,
        subject="services/dag-manager",
        idempotency_key="k",
    )
    await write(store, first, alert, second)
    calls: list[tuple[str, list[str]]] = []

    class Recording:
        async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None:
            calls.append((topic, [e.id for e in events]))

    assert await OutboxRelay(store, Recording()).drain() == 3
    assert calls == [
        (DAG_EVENTS, [first.id]),
        (OPS_EVENTS, [alert.id]),
        (DAG_EVENTS, [second.id]),
    ]


UNPUBLISHABLE = [
    pytest.param(b"\xff\xff\xff", "bad", DAG_EVENTS, id="not-an-event"),
    pytest.param(queue_event(1).SerializeToString(), "other-id", DAG_EVENTS, id="wrong-id"),
    pytest.param(
        event_pb2.Event(id="no-subject", type="qmtl.dag.queue_updated").SerializeToString(),
        "no-subject",
        DAG_EVENTS,
        id="no-subject",
    ),
    pytest.param(
        event_pb2.Event(id="dlq", type="t", subject="s").SerializeToString(),
        "dlq",
        DAG_EVENTS + ".dlq",
        id="dead-letter-topic",
    ),
]


@pytest.mark.parametrize(("payload", "entry_id", "topic"), UNPUBLISHABLE)
async def test_an_unpublishable_entry_is_dropped_without_blocking_the_rest(
    store: InMemoryGraphStore, payload: bytes, entry_id: str, topic: str
) -> None:
    bad = OutboxMessage(entry_id, topic, payload)
    await store.record_answer("bad", "e", announce=always(bad))
    good = queue_event(1)
    await write(store, good)
    bus = InMemoryEventBus(partitions=1)
    relay = OutboxRelay(store, bus)

    assert await relay.drain() == 1
    assert [e.id for e in published(bus)] == [good.id]
    assert relay.dropped == 1
    assert await store.outbox_pending() == []


async def test_the_background_loop_drains_when_notified(store: InMemoryGraphStore) -> None:
    bus = InMemoryEventBus(partitions=1)
    relay = OutboxRelay(store, bus, interval_s=3600)  # only a notify can wake it in time
    relay.start()
    try:
        event = queue_event(1)
        await write(store, event)
        await relay.announced()
        await eventually(lambda: _has(bus, event.id), what="the notified drain")
    finally:
        await relay.stop()
    assert await store.outbox_pending() == []


class FlakyBus(InMemoryEventBus):
    def __init__(self, failures: int) -> None:
        super().__init__(partitions=1)
        self.failures = failures

    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None:
        if self.failures:
            self.failures -= 1
            raise EventBusError("broker down", operation="publish", retryable=True)
        await super().publish(topic, events)


async def test_the_background_loop_retries_after_a_failure(
    store: InMemoryGraphStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("qmtl.runtime.outbox.relay.RELAY_BACKOFF_BASE_S", 0.01)
    event = queue_event(1)
    await write(store, event)
    bus = FlakyBus(failures=2)
    relay = OutboxRelay(store, bus, interval_s=3600)
    relay.start()

    async def recovered() -> bool:
        # `failures` is reset by the first drain that went through.
        return await _has(bus, event.id) and relay.failures == 0

    try:
        await eventually(recovered, what="the retried drain")
    finally:
        await relay.stop()
    assert bus.failures == 0
    assert [e.id for e in published(bus)] == [event.id]
    assert await store.outbox_pending() == []


@pytest.mark.parametrize(
    ("options", "field"),
    [({"page": 0}, "page"), ({"page": MAX_BATCH + 1}, "page"), ({"interval_s": 0}, "interval_s")],
)
def test_relay_settings_out_of_range_are_refused(options: dict[str, Any], field: str) -> None:
    with pytest.raises(OutboxConfigError) as caught:
        OutboxRelay(InMemoryGraphStore(), InMemoryEventBus(), **options)
    assert caught.value.field == field
    assert caught.value.code == "E_VALIDATION"


def test_backoff_doubles_up_to_its_cap() -> None:
    assert backoff_delay(1) == RELAY_BACKOFF_BASE_S
    assert backoff_delay(2) == 2 * RELAY_BACKOFF_BASE_S
    assert backoff_delay(100) == RELAY_BACKOFF_CAP_S


async def test_a_boot_relays_what_a_crashed_run_left_and_counts_it(
    store: InMemoryGraphStore,
) -> None:
    left = [queue_event(1), queue_event(2)]
    await write(store, *left)
    bus = InMemoryEventBus(partitions=1)
    restart = Restart("dag-manager", "dm-1", "test", started_at=5.5, crash_detected=True)
    assert await restart.drain(store, bus) == 2
    await restart.announce(bus)
    # A crashed boot also raises its ServiceCrashed alert (docs/operations/alerts.md).
    [announced, crashed] = published(bus, OPS_EVENTS)
    assert crashed.alert_raised.name == "ServiceCrashed"
    restarted = announced.service_restarted

    assert restarted.replayed_events == 2
    assert (restarted.service, restarted.instance_id, restarted.crash_detected) == (
        "dag-manager",
        "dm-1",
        True,
    )
    assert restarted.started_at.seconds == 5
    assert restarted.started_at.nanos == 500_000_000
    assert [e.id for e in published(bus)] == [e.id for e in left]
    assert announced.type == "qmtl.ops.service_restarted"


async def _has(bus: InMemoryEventBus, event_id: str) -> bool:
    return event_id in [e.id for e in published(bus)]


async def test_delivery_type_is_the_bus_shape() -> None:
    # The relay publishes through the port E1 defines; a subscriber gets a Delivery.
    bus = InMemoryEventBus(partitions=1)
    got: list[Delivery] = []

    async def handle(delivery: Delivery) -> None:
        got.append(delivery)

    store = InMemoryGraphStore(clock=ManualClock())
    event = queue_event(7)
    await write(store, event)
    subscription = await bus.subscribe([DAG_EVENTS], "g", handle)
    await OutboxRelay(store, bus).drain()
    await eventually(lambda: _count(got), what="the delivery")
    await subscription.stop()
    assert got[0].event == event
    assert got[0].topic == DAG_EVENTS


async def _count(got: list[Delivery]) -> bool:
    return bool(got)
