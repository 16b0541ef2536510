"""GC on the real Neo4j graph store: the same sweeps as test_gc.py, where the store's own
orphan timing and its "delete only what is still an orphan" run as Cypher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from qmtl.dagmanager.v1 import gc_messages_pb2
from qmtl.runtime.graphstore import DeleteAnnouncements, GraphStore, Orphan, StoredNode
from qmtl.services.dag_manager.gc import GarbageCollector
from tests.contract.graphstore_neo4j import SharedGraph, shared_graph
from tests.contract.graphstore_support import ManualClock, open_graph_store
from tests.dag_manager.gc_support import DAY, GcWorld, make_world

__all__ = ["shared_graph"]  # the session's migrated Neo4j prefix, a fixture

INDICATOR_AFTER = 33 * DAY
WITHIN_GRACE = gc_messages_pb2.GC_SKIP_REASON_WITHIN_GRACE


@pytest.fixture
async def world(shared_graph: SharedGraph) -> AsyncIterator[GcWorld]:
    clock = ManualClock()
    async with open_graph_store("neo4j", clock, shared_graph) as store:
        yield make_world(clock=clock, store=store)


async def test_a_sweep_on_neo4j_drops_expired_orphans_and_keeps_the_rest(world: GcWorld) -> None:
    expired = await world.add("expired", tags=("btc", "price"))
    world.clock.advance(10 * DAY)
    young = await world.add("young")
    used = await world.add("used", strategy="s1")
    world.clock.advance(INDICATOR_AFTER - 10 * DAY)

    outcome = await world.gc.sweep()

    assert [i.queue for i in outcome.report.processed] == [expired]
    assert [(i.queue, i.reason) for i in outcome.report.skipped] == [(young, WITHIN_GRACE)]
    assert outcome.report.observed == 2
    assert not await world.in_store(expired)
    assert not await world.in_broker(expired)
    assert await world.in_store(young)
    assert await world.in_store(used)
    assert outcome.affected_tag_intervals == [("btc", 60), ("price", 60)]
    assert [lc.queue for lc in world.lifecycles()] == [expired]


class _ReferenceOnDelete:
    """Wraps the Neo4j store: a strategy takes the node up again just before the delete.
    Only what a sweep calls (GcStore) is forwarded."""

    def __init__(self, store: GraphStore) -> None:
        self.inner = store

    async def orphans(self, older_than: float, limit: int = 1000) -> list[Orphan]:
        return await self.inner.orphans(older_than, limit)

    async def get_nodes(self, node_ids: Sequence[str]) -> dict[str, StoredNode]:
        return await self.inner.get_nodes(node_ids)

    async def delete_queues(
        self, topics: Sequence[str], *, announce: DeleteAnnouncements | None = None
    ) -> list[str]:
        await self.inner.add_strategy_refs("late", ["blake3:a"])
        return await self.inner.delete_queues(topics, announce=announce)


async def test_on_neo4j_a_queue_referenced_again_is_kept(world: GcWorld) -> None:
    topic = await world.add("a", strategy="s1")
    await world.store.release_strategy("s1")
    world.clock.advance(20 * DAY)
    await world.store.add_strategy_refs("s2", ["blake3:a"])
    world.clock.advance(20 * DAY)
    assert (await world.gc.sweep()).report.observed == 0

    await world.store.release_strategy("s2")
    world.clock.advance(INDICATOR_AFTER)
    racing = GarbageCollector(
        _ReferenceOnDelete(world.store),
        world.topics,
        world.events,
        clock=world.clock,
    )
    outcome = await racing.sweep()

    assert outcome.report.candidates == 1
    assert outcome.dropped == ()
    assert await world.in_store(topic)
    assert await world.in_broker(topic)
    assert world.events.events == []
    assert await world.store.outbox_pending() == []  # nothing written for a kept queue
    stored = await world.store.get_nodes(["blake3:a"])
    assert stored["blake3:a"].ref_count == 1
