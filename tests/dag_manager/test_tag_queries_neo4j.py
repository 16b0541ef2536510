"""Tag-query versions on the real Neo4j: two DAG Manager instances (each its own store object
on one graph) agree on every version, also across a restart and when racing.

Each test has its own label prefix, migrated and dropped afterwards (graphstore_neo4j.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from qmtl.common.v1 import match_mode_pb2
from qmtl.runtime.graphstore import GraphChanges, GraphStore
from qmtl.runtime.graphstore.neo4j import Neo4jGraphStore
from qmtl.services.dag_manager.tag_queries import TagQueryService
from tests.contract.graphstore_neo4j import DATABASE, migrated_graph
from tests.contract.graphstore_support import ManualClock, node
from tests.dag_manager.outbox_support import RecordingBus, RelayedEvents

ANY = match_mode_pb2.MATCH_MODE_ANY
ALL = match_mode_pb2.MATCH_MODE_ALL


def versions(bus: RecordingBus) -> list[int]:
    """The versions announced, each event once: two relays on one outbox may both send an
    entry (at least once), and a consumer dedupes by Event.id."""
    unique = {e.id: e.queue_updated.version for e in bus.events}
    return sorted(unique.values())


@pytest.fixture
async def two_stores() -> AsyncIterator[tuple[GraphStore, GraphStore]]:
    clock = ManualClock()
    async with migrated_graph() as (driver, names):
        first = Neo4jGraphStore(driver, names=names, clock=clock, database=DATABASE)
        second = Neo4jGraphStore(driver, names=names, clock=clock, database=DATABASE)
        try:
            yield first, second
        finally:
            await first.aclose()
            await second.aclose()


async def test_two_instances_agree_on_versions_and_announce_each_once(
    two_stores: tuple[GraphStore, GraphStore],
) -> None:
    store_a, store_b = two_stores
    bus = RecordingBus()
    a = TagQueryService(store_a, RelayedEvents(store_a, bus))
    b = TagQueryService(store_b, RelayedEvents(store_b, bus))
    await store_a.apply(GraphChanges(nodes=(node("x", tags=("btc", "price")),)))

    assert (await a.resolve(["btc", "price"], 60, ALL)).version == 1
    assert (await b.resolve(["price", "btc"], 60, ALL)).version == 1
    await store_b.apply(GraphChanges(nodes=(node("y", tags=("price", "btc")),)))
    v2 = await b.resolve(["btc", "price"], 60, ALL)
    assert (v2.version, [q.queue for q in v2.queues]) == (
        2,
        ["asset_Node_x_v1", "asset_Node_y_v1"],
    )
    assert (await a.resolve(["btc", "price"], 60, ALL)).version == 2
    # A restarted instance (new service, new store object) sees the same version.
    restarted = TagQueryService(store_a, RelayedEvents(store_a, RecordingBus()))
    assert (await restarted.resolve(["btc", "price"], 60, ALL)).version == 2
    assert versions(bus) == [1, 2]


async def test_instances_racing_on_one_change_bump_the_version_once(
    two_stores: tuple[GraphStore, GraphStore],
) -> None:
    store_a, store_b = two_stores
    bus = RecordingBus()
    a = TagQueryService(store_a, RelayedEvents(store_a, bus))
    b = TagQueryService(store_b, RelayedEvents(store_b, bus))
    await store_a.apply(GraphChanges(nodes=(node("x", tags=("btc",)),)))
    await a.resolve(["btc"], 60, ANY)
    await store_a.apply(GraphChanges(nodes=(node("y", tags=("btc",)),)))

    answers = await asyncio.gather(*(service.resolve(["btc"], 60, ANY) for service in (a, b, a, b)))
    assert {u.version for u in answers} == {2}
    assert versions(bus) == [1, 2]
