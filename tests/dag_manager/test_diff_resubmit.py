"""Resubmissions answered from the graph's record of the last diff (docs/operations/diff.md,
"Resubmissions"): the same answer as the full diff, without rewriting a node, and never an
answer that outlived a change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from qmtl.dag.v1 import node_pb2
from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.runtime.errors import ErrorCode
from qmtl.runtime.graphstore import Applied, GraphChanges, GraphStore, InMemoryGraphStore
from qmtl.services.dag_manager.diff import DiffService
from tests.dag_manager.dag_builders import DagBuilder, chain, diff_request
from tests.dag_manager.diff_support import DiffEnv, expect_rejected, make_env


@dataclass
class CountingStore:
    """The in-memory store, counting the calls a diff makes."""

    inner: InMemoryGraphStore
    calls: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.inner, name)

    async def apply(self, changes: GraphChanges) -> Applied:
        self.calls.append("apply")
        return await self.inner.apply(changes)


@pytest.fixture
def env() -> DiffEnv:
    return make_env()


def counting(env: DiffEnv) -> tuple[CountingStore, DiffService]:
    assert isinstance(env.store, InMemoryGraphStore)
    store = CountingStore(env.store)
    service: GraphStore = store
    return store, env.service(store=service)


def shared_with(node: node_pb2.Node, **changes: Any) -> diff_messages_pb2.DiffRequest:
    """Another strategy's DAG holding `node` with `changes` to fields outside its id."""
    copy = node_pb2.Node()
    copy.CopyFrom(node)
    for name, value in changes.items():
        if name == "tags":
            copy.ClearField("tags")
            copy.tags.extend(value)
        else:
            setattr(copy, name, value)
    builder = DagBuilder()
    builder.add(copy)
    return builder.request("strategy-b")


async def test_a_resubmission_is_answered_without_rewriting_the_graph(env: DiffEnv) -> None:
    builder = DagBuilder()
    ids = chain(builder, 4)
    builder.tag_query(["btc"], interval=60)
    first = await env.service().diff(builder.request())
    store, service = counting(env)
    again = await service.diff(builder.request())
    assert "apply" not in store.calls
    assert "get_nodes" not in store.calls
    assert store.calls.count("snapshot") == 1
    assert list(again.new_node_ids) == []
    assert list(again.reused_node_ids) == [*ids, builder.nodes[-1].node_id]
    assert dict(again.queue_map.queues) == dict(first.queue_map.queues)
    assert again.queue_map.tag_queries == first.queue_map.tag_queries
    # It is exactly what the full diff answers to the same resubmission.
    full = await env.service().diff(diff_request("strategy-1", builder.dag()))
    assert again == full


async def test_tag_query_answers_are_fresh_on_a_resubmission(env: DiffEnv) -> None:
    builder = DagBuilder()
    query = builder.tag_query(["sol"], interval=60)
    first = await env.service().diff(builder.request())
    assert list(first.queue_map.tag_queries[query].queues) == []
    other = DagBuilder()
    src = other.node("StreamInput", tags=["sol"], params={"s": "SOL"})
    await env.service().diff(other.request("strategy-2"))
    store, service = counting(env)
    again = await service.diff(builder.request())
    assert "apply" not in store.calls
    assert [q.node_id for q in again.queue_map.tag_queries[query].queues] == [src]


async def test_a_schema_change_by_another_strategy_is_not_hidden(env: DiffEnv) -> None:
    mine = DagBuilder()
    ids = chain(mine, 2)
    await env.service().diff(mine.request("strategy-a"))
    await env.service().diff(shared_with(mine.nodes[0], schema_hash="ab" * 32))
    store, service = counting(env)
    again = await service.diff(mine.request("strategy-a"))
    assert "apply" in store.calls  # the record no longer holds: the full diff ran
    (instruction,) = again.buffer_nodes
    assert (instruction.node_id, instruction.previous_schema_hash) == (ids[0], "ab" * 32)


async def test_a_tag_added_by_another_strategy_shows_in_the_answer(env: DiffEnv) -> None:
    mine = DagBuilder()
    ids = chain(mine, 2)
    await env.service().diff(mine.request("strategy-a"))
    await env.service().diff(shared_with(mine.nodes[0], tags=["btc", "extra"]))
    again = await env.service().diff(mine.request("strategy-a"))
    assert list(again.queue_map.queues[ids[0]].tags) == ["btc", "extra"]


async def test_after_a_release_the_full_diff_answers(env: DiffEnv) -> None:
    builder = DagBuilder()
    chain(builder, 3)
    first = await env.service().diff(builder.request())
    await env.store.release_strategy("strategy-1")
    store, service = counting(env)
    again = await service.diff(builder.request())
    assert "apply" in store.calls
    assert dict(again.queue_map.queues) == dict(first.queue_map.queues)
    stored = await env.store.get_nodes(list(first.queue_map.queues))
    assert [n.ref_count for n in stored.values()] == [1, 1, 1]


async def test_the_record_is_per_strategy_and_per_request(env: DiffEnv) -> None:
    builder = DagBuilder()
    chain(builder, 2)
    await env.service().diff(builder.request("strategy-a"))
    store, service = counting(env)
    # Another strategy with the same DAG: its own full diff (it must reference the nodes).
    await service.diff(builder.request("strategy-b"))
    assert "apply" in store.calls
    # A dry run is never answered from the record, nor recorded.
    store.calls.clear()
    await service.diff(builder.request("strategy-a", dry_run=True))
    assert "snapshot" not in store.calls


async def test_a_wrong_checksum_on_known_bytes_is_still_refused(env: DiffEnv) -> None:
    builder = DagBuilder()
    chain(builder, 2)
    await env.service().diff(builder.request())
    bad = builder.request()
    bad.node_ids_crc32 ^= 1
    await expect_rejected(
        env, bad, ErrorCode.ERROR_CODE_CHECKSUM_MISMATCH, "node_ids_crc32", status=400
    )


async def test_an_unreadable_record_falls_back_to_the_full_diff(env: DiffEnv) -> None:
    builder = DagBuilder()
    chain(builder, 2)
    first = await env.service().diff(builder.request())
    store = env.store
    assert isinstance(store, InMemoryGraphStore)
    (recorded,) = store._snapshots.values()
    store._snapshots["strategy-1"] = type(recorded)(
        type(recorded.snapshot)(recorded.snapshot.key, b"\xff\xff not protobuf"),
        recorded.count,
        recorded.revs,
    )
    counted, service = counting(env)
    again = await service.diff(builder.request())
    assert "apply" in counted.calls
    assert dict(again.queue_map.queues) == dict(first.queue_map.queues)
    assert list(again.reused_node_ids) == list(first.new_node_ids)
    # The full diff recorded it anew.
    counted.calls.clear()
    assert await service.diff(builder.request()) == again
    assert "apply" not in counted.calls
