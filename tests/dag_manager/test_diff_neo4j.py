"""The diff on the real Neo4j: queues survive restarts and other instances, racing diffs of one
new DAG agree, and a diff that fails leaves no partial nodes.

Each test runs on labels of its own (`migrated_graph`: a `GraphNames(f"T{uuid}")` prefix with
the real migrations), dropped afterwards; the shared database is never wiped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest
from neo4j import AsyncDriver

from qmtl.dag.v1 import diff_result_pb2, node_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.graph_migrations import GraphNames
from qmtl.runtime.graphstore import GraphChanges, NodeWrite, StoredNode
from qmtl.runtime.graphstore.neo4j import Neo4jGraphStore
from qmtl.runtime.topicadmin import InMemoryTopicAdmin
from qmtl.services.dag_manager.diff import DiffService, topic_candidates
from qmtl.services.dag_manager.diff.snapshot import snapshot_key
from tests.contract.graphstore_neo4j import DATABASE, migrated_graph
from tests.contract.graphstore_support import ManualClock
from tests.dag_manager.dag_builders import DagBuilder, chain


@dataclass
class Graph:
    driver: AsyncDriver
    names: GraphNames
    endpoints: ServiceEndpoints
    clock: ManualClock
    admin: InMemoryTopicAdmin

    async def instance(self, stack: AsyncExitStack) -> tuple[Neo4jGraphStore, DiffService]:
        """A DAG Manager of its own: its own driver (connection pool), store and DiffService,
        on the same graph and broker."""
        store = await Neo4jGraphStore.connect(
            self.endpoints.neo4j_uri,
            self.endpoints.neo4j_user,
            self.endpoints.neo4j_password,
            names=self.names,
            clock=self.clock,
            database=DATABASE,
        )
        stack.push_async_callback(store.aclose)
        return store, DiffService(store, self.admin, clock=self.clock)

    async def count(self, label: str) -> int:
        records, _, _ = await self.driver.execute_query(
            f"MATCH (n:{label}) RETURN count(n) AS n", database_=DATABASE
        )
        return int(records[0]["n"])


@pytest.fixture
async def graph(endpoints: ServiceEndpoints) -> AsyncIterator[Graph]:
    async with migrated_graph() as (driver, names):
        yield Graph(driver, names, endpoints, ManualClock(), InMemoryTopicAdmin())


def queues(result: diff_result_pb2.DiffResult) -> dict[str, str]:
    return {nid: d.queue for nid, d in result.queue_map.queues.items()}


def strategy_dag() -> tuple[DagBuilder, list[str]]:
    builder = DagBuilder()
    ids = chain(builder, 4)
    builder.tag_query(["btc"], interval=60)
    return builder, ids


async def test_same_queues_after_a_restart_and_from_a_second_instance(graph: Graph) -> None:
    builder, ids = strategy_dag()
    all_ids = [n.node_id for n in builder.nodes]
    async with AsyncExitStack() as stack:
        _, first_service = await graph.instance(stack)
        first = await first_service.diff(builder.request("strategy-a"))
    assert list(first.new_node_ids) == all_ids
    resolved = first.queue_map.tag_queries[all_ids[-1]].queues
    assert sorted(q.node_id for q in resolved) == sorted(ids)

    async with AsyncExitStack() as stack:  # the first instance is gone: a restart
        _, restarted = await graph.instance(stack)
        _, other = await graph.instance(stack)
        again = await restarted.diff(builder.request("strategy-a"))
        from_other = await other.diff(builder.request("strategy-b"))
        for result in (again, from_other):
            assert queues(result) == queues(first)
            assert list(result.new_node_ids) == []
            assert list(result.reused_node_ids) == all_ids
        store, _ = await graph.instance(stack)
        stored = await store.get_nodes(all_ids)
    assert {nid: s.topic for nid, s in stored.items()} == queues(first)
    assert all(s.ref_count == 2 for s in stored.values())
    assert await graph.count(graph.names.compute_node) == len(all_ids)
    assert await graph.count(graph.names.queue) == len(all_ids)


async def test_a_resubmission_after_a_restart_replays_the_recorded_answer(graph: Graph) -> None:
    builder, ids = strategy_dag()
    async with AsyncExitStack() as stack:
        _, first_service = await graph.instance(stack)
        first = await first_service.diff(builder.request("strategy-a"))
    async with AsyncExitStack() as stack:
        store, restarted = await graph.instance(stack)
        key = snapshot_key(builder.request("strategy-a"))
        assert await store.snapshot("strategy-a", key) is not None
        again = await restarted.diff(builder.request("strategy-a"))
        assert queues(again) == queues(first)
        assert list(again.reused_node_ids) == [n.node_id for n in builder.nodes]
        # Another instance rewrites a node the record answered for: it lapses, and the full
        # diff answers with what the graph now says.
        _, other = await graph.instance(stack)
        tagged = node_pb2.Node()
        tagged.CopyFrom(builder.nodes[0])
        tagged.tags.append("extra")
        shared = DagBuilder()
        shared.add(tagged)
        await other.diff(shared.request("strategy-b"))
        assert await store.snapshot("strategy-a", key) is None
        after = await restarted.diff(builder.request("strategy-a"))
    assert list(after.queue_map.queues[ids[0]].tags) == ["btc", "extra"]
    assert await store_snapshot_is_back(graph, key)


async def store_snapshot_is_back(graph: Graph, key: str) -> bool:
    async with AsyncExitStack() as stack:
        store, _ = await graph.instance(stack)
        return await store.snapshot("strategy-a", key) is not None


async def test_concurrent_diffs_of_one_new_dag_agree(graph: Graph) -> None:
    builder, _ = strategy_dag()
    all_ids = [n.node_id for n in builder.nodes]
    async with AsyncExitStack() as stack:
        services = [(await graph.instance(stack))[1] for _ in range(3)]
        results = await asyncio.gather(
            *(s.diff(builder.request(f"strategy-{i}")) for i, s in enumerate(services))
        )
        store, _ = await graph.instance(stack)
        stored = await store.get_nodes(all_ids)
    assert all(queues(r) == queues(results[0]) for r in results)
    created = [nid for r in results for nid in r.new_node_ids]
    assert sorted(created) == sorted(all_ids)  # each node created exactly once
    assert all(s.ref_count == 3 for s in stored.values())
    assert await graph.count(graph.names.compute_node) == len(all_ids)


async def test_collision_growth_against_the_real_graph(graph: Graph) -> None:
    builder, ids = strategy_dag()
    src = builder.nodes[0]
    names = topic_candidates(
        tags=["btc"], node_type="StreamInput", node_id=src.node_id, version="v1"
    )
    taken, grown = next(names), next(names)
    async with AsyncExitStack() as stack:
        store, service = await graph.instance(stack)
        squatter = NodeWrite(node_id="blake3:squatter", node_type="Node", topic=taken)
        await store.apply(GraphChanges(nodes=(squatter,)))
        result = await service.diff(builder.request())
        assert result.queue_map.queues[ids[0]].queue == grown
        stored = await store.get_nodes([ids[0], squatter.node_id])
    assert (stored[ids[0]].topic, stored[squatter.node_id].topic) == (grown, taken)


class DependencyVanishes(Neo4jGraphStore):
    """Deletes the orphan queue `victim` right after the diff's lookup, as a GC racing the diff
    would, so the graph write itself fails on the missing dependency."""

    victim = ""

    async def get_nodes(self, node_ids: Sequence[str]) -> dict[str, StoredNode]:
        found = await super().get_nodes(node_ids)
        if self.victim:
            await self.delete_queues([self.victim])
        return found


async def test_failing_diffs_leave_no_partial_nodes(graph: Graph) -> None:
    async with AsyncExitStack() as stack:
        store, service = await graph.instance(stack)
        upstream = NodeWrite(
            node_id="blake3:" + "ab" * 32, node_type="StreamInput", topic="btc_up_v1"
        )
        await store.apply(GraphChanges(nodes=(upstream,)))  # unreferenced: an orphan
        before = await graph.count(graph.names.compute_node)

        builder, _ = strategy_dag()
        builder.node("Indicator", tags=["btc"], deps=[upstream.node_id, "blake3:" + "cd" * 32])
        with pytest.raises(QmtlError) as caught:
            await service.diff(builder.request())
        assert caught.value.code == ErrorCode.ERROR_CODE_DAG_INVALID
        assert caught.value.details["field"] == "dag.nodes[5].spec.dependencies[1]"
        assert await graph.count(graph.names.compute_node) == before

        racing = DependencyVanishes(
            graph.driver, names=graph.names, clock=graph.clock, database=DATABASE
        )
        racing.victim = upstream.topic
        builder, _ = strategy_dag()
        builder.node("Indicator", tags=["btc"], deps=[upstream.node_id])
        with pytest.raises(QmtlError) as caught:
            await DiffService(racing, graph.admin, clock=graph.clock).diff(builder.request())
        assert caught.value.code == ErrorCode.ERROR_CODE_DAG_INVALID
        # The whole transaction rolled back: none of the five new nodes, nor their queues.
        assert await graph.count(graph.names.compute_node) == before - 1
        assert await graph.count(graph.names.queue) == before - 1
        assert await store.get_nodes([n.node_id for n in builder.nodes]) == {}
