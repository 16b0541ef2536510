"""GC when something else fails: the broker after the store delete, the event bus, the store.

The store is always written first, with the QueueLifecycle events in its outbox; a broker
failure leaves the topics pending in the collector, and the next sweep deletes them
(docs/operations/gc.md, "Failures and retry"; docs/operations/outbox.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.eventbus.topics import DAG_EVENTS
from qmtl.runtime.graphstore import (
    GraphChanges,
    GraphStoreUnavailableError,
    InMemoryGraphStore,
    Orphan,
    StrategyRefs,
)
from qmtl.runtime.topicadmin import InMemoryTopicAdmin
from qmtl.services.dag_manager.gc import GarbageCollector
from tests.contract.graphstore_support import ManualClock, node

from .gc_support import DAY, GcWorld, make_world
from .outbox_support import RecordingBus, RelayedEvents

INDICATOR_AFTER = 33 * DAY


@pytest.fixture
async def world() -> AsyncIterator[GcWorld]:
    world = make_world()
    yield world
    await world.store.aclose()


async def test_a_broker_failure_after_the_store_delete_is_reported_and_retried(
    world: GcWorld,
) -> None:
    topic = await world.add("a")
    world.clock.advance(INDICATOR_AFTER)
    world.topics.fail_next(1, operation="delete")

    failed = await world.gc.sweep()

    # The graph side is done and final: the queue is processed and no longer in the graph...
    assert [i.queue for i in failed.report.processed] == [topic]
    assert [q.topic for q in failed.dropped] == [topic]
    assert not await world.in_store(topic)
    # ...the topic is still in the broker, pending, with the broker's error reported.
    assert await world.in_broker(topic)
    assert failed.broker_pending == (topic,) == world.gc.broker_pending
    assert failed.broker_error is not None
    assert failed.broker_error.operation == "delete"
    # The event went with the graph delete (the outbox), once: the retry adds none.
    assert [lc.queue for lc in world.lifecycles()] == [topic]

    retried = await world.gc.sweep()

    assert retried.report.observed == 0
    assert retried.dropped == ()
    assert not await world.in_broker(topic)
    assert retried.broker_pending == ()
    assert retried.broker_error is None
    assert [lc.queue for lc in world.lifecycles()] == [topic]


async def test_pending_deletes_are_retried_before_new_ones_and_together(world: GcWorld) -> None:
    first = await world.add("a")
    world.clock.advance(INDICATOR_AFTER)
    world.topics.fail_next(2, operation="delete")
    await world.gc.sweep()
    second = await world.add("b")
    world.clock.advance(INDICATOR_AFTER)

    still_failing = await world.gc.sweep()
    assert still_failing.broker_pending == (first, second)
    assert await world.in_broker(first)
    assert await world.in_broker(second)

    await world.gc.sweep()
    assert not await world.in_broker(first)
    assert not await world.in_broker(second)
    assert [lc.queue for lc in world.lifecycles()] == [first, second]


async def test_a_node_recreated_before_the_retry_keeps_its_topic(world: GcWorld) -> None:
    topic = await world.add("a")
    world.clock.advance(INDICATOR_AFTER)
    world.topics.fail_next(1, operation="delete")
    await world.gc.sweep()
    assert world.gc.broker_pending == (topic,)

    # A diff submits the same node again: same id, so the same topic name, which still exists.
    write = replace(node("a", topic=topic), node_type="Node")
    await world.store.apply(GraphChanges(nodes=(write,), refs=StrategyRefs("s1", ("blake3:a",))))

    outcome = await world.gc.sweep()

    assert outcome.broker_pending == ()
    assert await world.in_broker(topic)
    assert await world.in_store(topic)
    # The drop was announced with the graph delete; the node that came back is a new queue
    # (a new created_at, so a new idempotency key if it is dropped again).
    assert [lc.queue for lc in world.lifecycles()] == [topic]


async def test_an_event_the_bus_refused_stays_in_the_outbox_until_the_relay_sends_it() -> None:
    clock = ManualClock()
    store, topics = InMemoryGraphStore(clock=clock), InMemoryTopicAdmin()
    events = RelayedEvents(store, RecordingBus(failures=1))
    gc = GarbageCollector(store, topics, events, clock=clock)
    world = GcWorld(store, topics, events, clock, gc)
    topic = await world.add("a")
    world.clock.advance(INDICATOR_AFTER)

    await world.gc.sweep()  # the bus refuses: the sweep itself succeeds
    assert not await world.in_store(topic)
    assert not await world.in_broker(topic)
    assert world.gc.broker_pending == ()
    assert world.lifecycles() == []
    assert [e.topic for e in await store.outbox_pending()] == [DAG_EVENTS]

    await world.gc.sweep()  # nothing to drop; the next relay drain sends the kept event
    assert world.lifecycles() == []
    assert await events.drain() == 1
    assert [lc.queue for lc in world.lifecycles()] == [topic]


class DownStore(InMemoryGraphStore):
    async def orphans(self, older_than: float, limit: int = 1000) -> list[Orphan]:
        raise GraphStoreUnavailableError("neo4j is restarting")


async def test_an_unreachable_store_is_a_retryable_unavailable_error() -> None:
    world = make_world(store=DownStore())

    with pytest.raises(QmtlError) as caught:
        await world.gc.sweep()

    assert caught.value.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    assert caught.value.retryable
    assert world.events.events == []
