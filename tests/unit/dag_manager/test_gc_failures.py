"""GC when something else fails: the broker after the store delete, the event sink, the store.

The store is always written first; a broker failure leaves the topics pending in the
collector, and the next sweep deletes them (docs/operations/gc.md, "Failures and retry").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from qmtl.events.v1 import event_pb2
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.graphstore import (
    GraphChanges,
    GraphStoreUnavailableError,
    InMemoryGraphStore,
    Orphan,
    StrategyRefs,
)
from qmtl.runtime.topicadmin import InMemoryTopicAdmin
from qmtl.services.dag_manager.events import InMemoryEventSink
from qmtl.services.dag_manager.gc import GarbageCollector
from tests.contract.graphstore_support import ManualClock, node

from .gc_support import DAY, GcWorld, make_world

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
    assert world.events.events == []  # published once the topic is really gone

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
    assert world.events.events == []


class FlakySink(InMemoryEventSink):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def publish(self, event: event_pb2.Event) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("event bus down")
        await super().publish(event)


async def test_an_event_the_sink_refused_is_published_by_the_next_sweep() -> None:
    clock = ManualClock()
    store, topics, sink = InMemoryGraphStore(clock=clock), InMemoryTopicAdmin(), FlakySink(1)
    world = GcWorld(store, topics, sink, clock, GarbageCollector(store, topics, sink, clock=clock))
    topic = await world.add("a")
    world.clock.advance(INDICATOR_AFTER)

    with pytest.raises(ConnectionError):
        await world.gc.sweep()
    assert not await world.in_store(topic)
    assert not await world.in_broker(topic)
    assert world.gc.broker_pending == (topic,)

    await world.gc.sweep()

    assert [lc.queue for lc in world.lifecycles()] == [topic]
    assert not world.gc.broker_pending


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
