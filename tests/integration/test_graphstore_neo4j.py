"""The Neo4j GraphStore beyond the contract: several instances on one graph, races, rollback,
the TAG-index plan and an unreachable server.

Each instance is `Neo4jGraphStore.connect(...)` with a driver of its own, as two DAG Manager
processes would be. All of them work on the session's migrated label prefix (shared_graph),
which is emptied after each test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from neo4j import AsyncDriver

from qmtl.common.v1 import match_mode_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.graph_migrations import GraphNames
from qmtl.runtime.graphstore import (
    GraphChanges,
    GraphStoreError,
    GraphStoreUnavailableError,
    MatchMode,
    MissingDependencyError,
    StrategyRefs,
    TopicConflictError,
    UnknownNodeError,
)
from qmtl.runtime.graphstore.neo4j import Neo4jGraphStore
from qmtl.runtime.graphstore.neo4j_tx import RetryPolicy
from tests.contract.graphstore_neo4j import (
    DATABASE,
    SharedGraph,
    drop_graph,
    open_driver,
    shared_graph,
)
from tests.contract.graphstore_support import ManualClock, node

__all__ = ["shared_graph"]  # the session fixture, imported so pytest finds it

ANY = match_mode_pb2.MATCH_MODE_ANY
ALL = match_mode_pb2.MATCH_MODE_ALL
RACE_ROUNDS = 10


@dataclasses.dataclass
class Graph:
    driver: AsyncDriver  # for raw Cypher checks
    shared: SharedGraph
    endpoints: ServiceEndpoints
    clock: ManualClock

    async def instance(self) -> Neo4jGraphStore:
        e = self.endpoints
        return await Neo4jGraphStore.connect(
            e.neo4j_uri,
            e.neo4j_user,
            e.neo4j_password,
            names=self.shared.names,
            clock=self.clock,
            database=DATABASE,
        )

    async def count(self, pattern: str) -> int:
        n = self.shared.names
        query = pattern.format(
            cn=n.compute_node, q=n.queue, tag=n.tag, s=n.strategy, a=n.tag_query_answer
        )
        records, _, _ = await self.driver.execute_query(
            f"{query} RETURN count(*) AS n", database_=DATABASE
        )
        return int(records[0]["n"])


@pytest.fixture
async def graph(shared_graph: SharedGraph, endpoints: ServiceEndpoints) -> AsyncIterator[Graph]:
    async with shared_graph.use() as driver:
        yield Graph(driver, shared_graph, endpoints, ManualClock())


async def test_a_second_instance_sees_everything_the_first_wrote(graph: Graph) -> None:
    first = await graph.instance()
    await first.apply(
        GraphChanges(
            nodes=(node("src", tags=("BTC", "price")), node("ma", deps=("src",))),
            refs=StrategyRefs("s1", ("blake3:src", "blake3:ma")),
        )
    )
    await first.apply(GraphChanges(nodes=(node("spare", tags=("BTC",)),)))
    await first.add_strategy_refs("s2", ["blake3:src"])
    graph.clock.advance(5)
    assert await first.release_strategy("s1") == ["blake3:ma"]
    assert await first.record_answer("q", "e1") == (1, True)
    written = await first.get_nodes(["blake3:src", "blake3:ma", "blake3:spare"])
    await first.aclose()  # the first DAG Manager goes away (a restart)

    second = await graph.instance()
    try:
        assert await second.get_nodes(["blake3:src", "blake3:ma", "blake3:spare"]) == written
        assert written["blake3:src"].ref_count == 1
        lookup = await second.queues_by_tags(["BTC", "price"], 60, ALL)
        assert [q.topic for q in lookup] == ["asset_Node_src_v1"]
        # The same DAG again from the new instance: nothing created, the same queues.
        again = await second.apply(GraphChanges(nodes=(node("src", topic="renamed"),)))
        assert (again.created, again.topics) == ((), {"blake3:src": "asset_Node_src_v1"})
        assert await second.record_answer("q", "e1") == (1, False)
        assert await second.release_strategy("s2") == ["blake3:src"]
        orphans = await second.orphans(older_than=0)
        assert {o.node_id for o in orphans} == {"blake3:src", "blake3:ma", "blake3:spare"}
    finally:
        await second.aclose()


async def test_concurrent_applies_of_one_new_node_bind_one_queue(graph: Graph) -> None:
    a, b = await graph.instance(), await graph.instance()
    try:
        for i in range(RACE_ROUNDS):
            # Two DAG Managers race on the same new node, each proposing its own name.
            mine = node(f"race{i}", tags=("race",), topic=f"race_{i}_a")
            theirs = dataclasses.replace(mine, topic=f"race_{i}_b")
            got_a, got_b = await asyncio.gather(
                a.apply(GraphChanges(nodes=(mine,), refs=StrategyRefs("sa", (mine.node_id,)))),
                b.apply(GraphChanges(nodes=(theirs,), refs=StrategyRefs("sb", (mine.node_id,)))),
            )
            assert got_a.topics == got_b.topics
            assert sorted([got_a.created, got_b.created]) == [(), (mine.node_id,)]
            [stored] = (await a.get_nodes([mine.node_id])).values()
            assert stored.ref_count == 2
        assert await graph.count("MATCH (:{cn})-[:EMITS]->(:{q})") == RACE_ROUNDS
        assert await graph.count("MATCH (:{q})") == RACE_ROUNDS
        assert await graph.count("MATCH (:{cn})-[:TAGGED]->(:{tag})") == RACE_ROUNDS
    finally:
        await a.aclose()
        await b.aclose()


async def test_concurrent_new_nodes_asking_for_one_topic_one_wins(graph: Graph) -> None:
    a, b = await graph.instance(), await graph.instance()
    try:
        for i in range(RACE_ROUNDS):
            topic = f"contested_{i}"
            outcomes = await asyncio.gather(
                a.apply(GraphChanges(nodes=(node(f"x{i}", topic=topic),))),
                b.apply(GraphChanges(nodes=(node(f"y{i}", topic=topic),))),
                return_exceptions=True,
            )
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            assert len(errors) == 1, outcomes
            assert isinstance(errors[0], TopicConflictError), errors
            assert errors[0].field == "nodes[0].topic"
        assert await graph.count("MATCH (:{cn})") == RACE_ROUNDS
    finally:
        await a.aclose()
        await b.aclose()


async def test_concurrent_applies_sharing_tags_all_land(graph: Graph) -> None:
    a, b = await graph.instance(), await graph.instance()
    tags = ("t1", "t2", "t3", "t4")
    try:
        # Many nodes, overlapping tags in opposite orders: the Tag locks both writers need.
        left = tuple(node(f"l{i}", tags=tags) for i in range(15))
        right = tuple(node(f"r{i}", tags=tags[::-1]) for i in range(15))
        await asyncio.gather(a.apply(GraphChanges(nodes=left)), b.apply(GraphChanges(nodes=right)))
        answer = await a.queues_by_tags(list(tags), 0, ALL)
        assert len(answer) == 30
        assert await graph.count("MATCH (:{tag})") == 4
        assert await graph.count("MATCH (:{cn})-[:TAGGED]->(:{tag})") == 120
    finally:
        await a.aclose()
        await b.aclose()


async def test_gc_delete_racing_a_new_reference_never_loses_a_used_node(graph: Graph) -> None:
    gc, diff = await graph.instance(), await graph.instance()
    try:
        for i in range(RACE_ROUNDS):
            n = node(f"g{i}")
            await gc.apply(GraphChanges(nodes=(n,)))  # an orphan from birth
            deleted, referenced = await asyncio.gather(
                gc.delete_queues([n.topic]),
                diff.add_strategy_refs("s1", [n.node_id]),
                return_exceptions=True,
            )
            stored = await gc.get_nodes([n.node_id])
            if deleted == [n.topic]:
                # The delete won: the reference found no node and said so.
                assert isinstance(referenced, UnknownNodeError), referenced
                assert stored == {}
            else:
                # The reference won: the node is used and was kept.
                assert (deleted, referenced) == ([], None)
                assert stored[n.node_id].ref_count == 1
    finally:
        await gc.aclose()
        await diff.aclose()


async def test_concurrent_record_answer_hands_each_version_out_once(graph: Graph) -> None:
    a, b = await graph.instance(), await graph.instance()
    try:
        same = await asyncio.gather(a.record_answer("k1", "e"), b.record_answer("k1", "e"))
        assert sorted(same) == [(1, False), (1, True)]
        different = await asyncio.gather(a.record_answer("k2", "x"), b.record_answer("k2", "y"))
        assert sorted(v for v, _ in different) == [1, 2]
        assert all(changed for _, changed in different)
        assert await graph.count("MATCH (:{a})") == 2
    finally:
        await a.aclose()
        await b.aclose()


async def _raw_graph(graph: Graph) -> dict[str, int]:
    return {
        "nodes": await graph.count("MATCH (:{cn})"),
        "queues": await graph.count("MATCH (:{q})"),
        "tags": await graph.count("MATCH (:{tag})"),
        "tagged": await graph.count("MATCH ()-[:TAGGED]->()"),
        "strategies": await graph.count("MATCH (:{s})"),
        "uses": await graph.count("MATCH ()-[:USES]->()"),
    }


async def test_a_failing_apply_leaves_no_partial_nodes(graph: Graph) -> None:
    store = await graph.instance()
    try:
        await store.apply(GraphChanges(nodes=(node("kept", tags=("K",)),)))
        before = await _raw_graph(graph)
        failing = GraphChanges(
            nodes=(
                node("a", tags=("new",)),
                node("b", deps=("ghost",)),  # the middle of the batch
                node("c", tags=("new2",), deps=("a",)),
                node("kept", tags=("K", "extra")),
            ),
            refs=StrategyRefs("s1", ("blake3:a", "blake3:kept")),
        )
        with pytest.raises(MissingDependencyError) as raised:
            await store.apply(failing)
        assert raised.value.field == "nodes[1].dependencies"
        assert await _raw_graph(graph) == before
    finally:
        await store.aclose()


async def test_a_statement_failing_after_writes_rolls_the_whole_apply_back(
    graph: Graph,
) -> None:
    store = await graph.instance()
    try:
        before = await _raw_graph(graph)
        # The refs statement is the last of apply; make the server reject it, after the nodes,
        # queues and tags of the change set have been written in the same transaction.
        store._q = dataclasses.replace(store._q, add_refs="RETURN 1/0")
        with pytest.raises(GraphStoreError) as raised:
            await store.apply(
                GraphChanges(
                    nodes=(node("a", tags=("T",)), node("b", deps=("a",))),
                    refs=StrategyRefs("s1", ("blake3:a",)),
                )
            )
        assert type(raised.value) is GraphStoreError
        assert raised.value.to_qmtl_error().http_status == 500
        assert await _raw_graph(graph) == before
    finally:
        await store.aclose()


def _operators(plan: dict[str, Any]) -> list[tuple[str, str]]:
    found = [(str(plan["operatorType"]), str(plan.get("args", {}).get("Details", "")))]
    for child in plan.get("children", []):
        found += _operators(child)
    return found


@pytest.mark.parametrize("mode", [ANY, ALL])
async def test_tag_lookups_start_with_a_unique_index_seek_on_tag(
    graph: Graph, mode: MatchMode
) -> None:
    store = await graph.instance()
    try:
        await store.apply(
            GraphChanges(nodes=tuple(node(f"n{i}", tags=("BTC", f"t{i % 3}")) for i in range(30)))
        )
        query = store._q.lookup_all if mode == ALL else store._q.lookup_any
        _, summary, _ = await graph.driver.execute_query(
            f"PROFILE {query}", tags=["BTC", "t1"], wanted=2, interval=60, database_=DATABASE
        )
        assert summary.profile is not None
        ops = _operators(summary.profile)
        assert not [op for op, _ in ops if op.startswith(("NodeByLabelScan", "AllNodesScan"))]
        seeks = [d for op, d in ops if op.startswith("NodeUniqueIndexSeek")]
        assert any(graph.shared.names.tag in d for d in seeks), ops
        answer = await store.queues_by_tags(["BTC", "t1"], 60, mode)
        assert len(answer) == (10 if mode == ALL else 30)
    finally:
        await store.aclose()


async def test_an_unreachable_server_is_a_retryable_unavailable_error(graph: Graph) -> None:
    with pytest.raises(GraphStoreUnavailableError) as raised:
        await Neo4jGraphStore.connect("bolt://127.0.0.1:1", "neo4j", "x")
    assert raised.value.retryable
    assert raised.value.to_qmtl_error().http_status == 503
    with pytest.raises(GraphStoreUnavailableError) as raised:
        await Neo4jGraphStore.connect("nonsense", "neo4j", "x")
    assert not raised.value.retryable  # a configuration error: retrying cannot help

    # A driver that loses its server mid-life: bounded retries, then the same error.
    from neo4j import AsyncGraphDatabase

    driver = AsyncGraphDatabase.driver("bolt://127.0.0.1:1", auth=("neo4j", "x"))
    retry = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.02)
    store = Neo4jGraphStore(driver, names=graph.shared.names, retry=retry)
    started = time.monotonic()
    try:
        with pytest.raises(GraphStoreUnavailableError) as raised:
            await store.get_nodes(["blake3:a"])
        assert "after 3 attempts" in raised.value.message
        assert time.monotonic() - started < 10
    finally:
        await store.aclose()
        await driver.close()  # the store did not own it


async def test_a_graph_behind_its_migrations_still_answers_tag_lookups() -> None:
    # The boot check warns and reports degraded health on such a graph; the store must keep
    # answering (by a label scan instead of the TAG index seek), not fail every lookup.
    driver = await open_driver()
    names = GraphNames(f"T{uuid.uuid4().hex[:12]}")
    store = Neo4jGraphStore(driver, names=names, clock=ManualClock(), database=DATABASE)
    try:
        await store.apply(
            GraphChanges(nodes=(node("a", tags=("btc", "px")), node("b", tags=("eth",))))
        )
        answer = await store.queues_by_tags(["btc", "eth"], 60, ANY)
        assert [q.node_id for q in answer] == ["blake3:a", "blake3:b"]
        assert [q.node_id for q in await store.queues_by_tags(["btc", "px"], 60, ALL)] == [
            "blake3:a"
        ]
    finally:
        await store.aclose()
        await drop_graph(driver, names)
        await driver.close()
