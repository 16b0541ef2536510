"""The diff on the in-memory adapters: reuse, buffering, naming, persistence and failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from qmtl.common.v1 import match_mode_pb2
from qmtl.dag.v1 import buffer_instruction_pb2, diff_result_pb2
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.graphstore import (
    Applied,
    GraphChanges,
    GraphStoreUnavailableError,
    InMemoryGraphStore,
    NodeWrite,
    StoredNode,
)
from qmtl.runtime.topicadmin import topic_spec_for
from qmtl.services.dag_manager.diff import BUFFER_WINDOW_SECONDS, DiffLimits, topic_candidates
from tests.dag_manager.dag_builders import DagBuilder, chain, make_node
from tests.dag_manager.diff_support import DiffEnv, expect_rejected, make_env

E = ErrorCode


@pytest.fixture
def env() -> DiffEnv:
    return make_env()


def queues(result: diff_result_pb2.DiffResult) -> dict[str, str]:
    return {nid: d.queue for nid, d in result.queue_map.queues.items()}


def strategy_dag() -> tuple[DagBuilder, list[str]]:
    builder = DagBuilder()
    ids = chain(builder, 3)
    return builder, ids


async def test_first_diff_creates_every_queue_with_its_type_spec(env: DiffEnv) -> None:
    builder, ids = strategy_dag()
    result = await env.service().diff(builder.request())
    assert list(result.new_node_ids) == ids
    assert list(result.reused_node_ids) == []
    assert result.version == "v1"
    assert not result.dry_run
    assert result.sentinel_id == ""
    assert result.crc32 == builder.request().node_ids_crc32
    topics = await env.admin.list_topics()
    for node in builder.nodes:
        name = result.queue_map.queues[node.node_id].queue
        assert name == f"btc_{node.spec.node_type}_{node.node_id[7:15]}_v1"
        assert topics[name] == topic_spec_for(name, node.spec.node_type)
    stored = await env.store.get_nodes(ids)
    assert {nid: s.topic for nid, s in stored.items()} == queues(result)
    assert all(s.ref_count == 1 for s in stored.values())
    descriptor = result.queue_map.queues[ids[1]]
    assert (descriptor.node_id, descriptor.interval, list(descriptor.tags)) == (ids[1], 60, ["btc"])


async def test_new_nodes_are_stored_with_their_identity_fields(env: DiffEnv) -> None:
    builder = DagBuilder()
    src = builder.node("StreamInput", tags=["btc", "price", "btc"], params={"seed": 7, "s": 1})
    query = builder.tag_query(["price", "btc", "price"], interval=300)
    await env.service().diff(builder.request())
    stored = await env.store.get_nodes([src, query])
    assert stored[src].params_canon == '{"s":1}'
    assert stored[src].tags == ("btc", "price")
    assert (stored[src].code_hash, stored[src].schema_compat_id) == ("c0de" * 16, "compat-v1")
    assert stored[query].params_canon == (
        '{"interval":300,"match_mode":"any","query_tags":["btc","price"]}'
    )
    assert stored[query].interval == 300


async def test_same_dag_twice_and_after_a_restart_gets_the_same_queues(env: DiffEnv) -> None:
    builder, ids = strategy_dag()
    first = await env.service().diff(builder.request())
    topics_after_first = await env.admin.list_topics()
    for service in (env.service(), env.service()):  # a new DiffService is a restarted one
        again = await service.diff(builder.request())
        assert queues(again) == queues(first)
        assert (list(again.new_node_ids), list(again.reused_node_ids)) == ([], ids)
        assert list(again.buffer_nodes) == []
    assert await env.admin.list_topics() == topics_after_first


async def test_changed_schema_hash_reuses_the_queue_and_buffers(env: DiffEnv) -> None:
    builder, ids = strategy_dag()
    first = await env.service().diff(builder.request())
    old_hash = builder.nodes[1].schema_hash
    builder.nodes[1].schema_hash = "ab" * 32
    env.clock.advance(10)
    second = await env.service().diff(builder.request())
    assert queues(second) == queues(first)
    assert list(second.reused_node_ids) == ids
    (instruction,) = second.buffer_nodes
    assert instruction.node_id == ids[1]
    assert instruction.reason == buffer_instruction_pb2.BUFFER_REASON_SCHEMA_CHANGED
    assert instruction.lag == builder.nodes[1].spec.period == 5
    assert (instruction.schema_hash, instruction.previous_schema_hash) == ("ab" * 32, old_hash)
    assert instruction.buffering_since.seconds == int(env.clock.now)
    assert instruction.recompute_at.seconds == int(env.clock.now) + BUFFER_WINDOW_SECONDS
    assert (await env.store.get_nodes([ids[1]]))[ids[1]].schema_hash == "ab" * 32
    # The change is recorded, so the next diff of the same DAG does not buffer again.
    third = await env.service().diff(builder.request())
    assert list(third.buffer_nodes) == []


async def test_a_node_shared_by_two_strategies_has_one_queue(env: DiffEnv) -> None:
    a, _a_ids = strategy_dag()
    b = DagBuilder()
    shared = b.add(a.nodes[0])
    own = b.node("Indicator", tags=["btc"], params={"other": True}, deps=[shared])
    result_a = await env.service().diff(a.request("strategy-a"))
    result_b = await env.service().diff(b.request("strategy-b"))
    assert result_b.queue_map.queues[shared].queue == result_a.queue_map.queues[shared].queue
    assert (list(result_b.new_node_ids), list(result_b.reused_node_ids)) == ([own], [shared])
    assert (await env.store.get_nodes([shared]))[shared].ref_count == 2
    assert len(await env.admin.list_topics()) == 4


async def test_a_stored_dependency_outside_the_dag_is_referenced_too(env: DiffEnv) -> None:
    a, a_ids = strategy_dag()
    await env.service().diff(a.request("strategy-a"))
    b = DagBuilder()
    b.node("Indicator", tags=["btc"], params={"b": 1}, deps=[a_ids[2]])
    await env.service().diff(b.request("strategy-b"))
    # strategy-a going away must not orphan what strategy-b still reads from.
    orphaned = await env.store.release_strategy("strategy-a")
    assert a_ids[2] not in orphaned
    assert (await env.store.get_nodes([a_ids[2]]))[a_ids[2]].ref_count == 1


async def occupy(env: DiffEnv, topic: str, name: str) -> None:
    """Stores an unrelated node owning `topic`, as another strategy's node would."""
    squatter = NodeWrite(node_id=f"blake3:{name}", node_type="Node", topic=topic)
    await env.store.apply(GraphChanges(nodes=(squatter,)))
    env.seeded.append(squatter.node_id)


async def test_collision_grows_the_short_hash_through_the_store(env: DiffEnv) -> None:
    builder, ids = strategy_dag()
    src = builder.nodes[0]
    names = list(
        topic_candidates(tags=["btc"], node_type="StreamInput", node_id=src.node_id, version="v1")
    )[:3]
    await occupy(env, names[0], "squatter-8")
    await occupy(env, names[1], "squatter-10")
    result = await env.service().diff(builder.request())
    assert result.queue_map.queues[ids[0]].queue == names[2]
    assert len(names[2].split("_")[2]) == 12
    assert (await env.store.get_nodes([ids[0]]))[ids[0]].topic == names[2]
    assert names[2] in await env.admin.list_topics()
    # The squatters kept their queues, and a resubmit keeps the grown name.
    owners = await env.store.get_nodes(["blake3:squatter-8", "blake3:squatter-10"])
    assert [s.topic for s in owners.values()] == names[:2]
    assert queues(await env.service().diff(builder.request())) == queues(result)


async def test_collision_retries_are_bounded(env: DiffEnv) -> None:
    builder, _ = strategy_dag()
    src = builder.nodes[0]
    names = topic_candidates(
        tags=["btc"], node_type="StreamInput", node_id=src.node_id, version="v1"
    )
    await occupy(env, next(names), "a")
    await occupy(env, next(names), "b")
    service = env.service(limits=DiffLimits(max_apply_attempts=2))
    before = await env.store.get_nodes([n.node_id for n in builder.nodes])
    with pytest.raises(QmtlError) as caught:
        await service.diff(builder.request())
    assert caught.value.code == E.ERROR_CODE_UNAVAILABLE
    assert caught.value.retryable
    assert caught.value.status == 503
    assert await env.store.get_nodes([n.node_id for n in builder.nodes]) == before == {}


async def test_dry_run_persists_and_creates_nothing(env: DiffEnv) -> None:
    builder, ids = strategy_dag()
    dry = await env.service().diff(builder.request(dry_run=True))
    assert dry.dry_run
    assert list(dry.new_node_ids) == ids
    assert all(name.endswith("_v1_sim") for name in queues(dry).values())
    assert await env.store.get_nodes(ids) == {}
    assert await env.admin.list_topics() == {}
    real = await env.service().diff(builder.request())
    assert [name + "_sim" for name in queues(real).values()] == list(queues(dry).values())
    # After the real diff a dry run reports the real queues of stored nodes.
    builder.node("Indicator", tags=["btc"], params={"late": 1}, deps=[ids[2]])
    again = await env.service().diff(builder.request(dry_run=True))
    assert list(again.reused_node_ids) == ids
    assert len(again.new_node_ids) == 1
    assert {k: v for k, v in queues(again).items() if k in ids} == queues(real)


async def test_version_label_names_new_queues_and_a_bump_keeps_old_ones(env: DiffEnv) -> None:
    builder = DagBuilder(version="2.3.0+build/7")
    ids = chain(builder, 2)
    result = await env.service().diff(builder.request())
    assert result.version == "2.3.0-build-7"
    assert all(q.endswith("_2.3.0-build-7") for q in queues(result).values())
    bumped = DagBuilder(version="3.0")
    for node in builder.nodes:
        bumped.add(node)
    again = await env.service().diff(bumped.request())
    assert again.version == "3.0"
    assert queues(again) == queues(result)
    assert list(again.reused_node_ids) == ids


async def test_tag_query_nodes_resolve_to_matching_queues(env: DiffEnv) -> None:
    upstream = DagBuilder()
    btc_60 = upstream.node("StreamInput", tags=["btc", "price"], interval=60, params={"s": 1})
    eth_60 = upstream.node("StreamInput", tags=["eth", "price"], interval=60, params={"s": 2})
    btc_300 = upstream.node("StreamInput", tags=["btc"], interval=300, params={"s": 3})
    stored = await env.service().diff(upstream.request("upstream"))
    topic = {nid: stored.queue_map.queues[nid].queue for nid in (btc_60, eth_60, btc_300)}

    builder = DagBuilder()
    any_price = builder.tag_query(["price", "btc"], interval=60)
    all_btc_price = builder.tag_query(
        ["btc", "price"], interval=60, match_mode=match_mode_pb2.MATCH_MODE_ALL
    )
    nothing = builder.tag_query(["doge"], interval=60)
    result = await env.service().diff(builder.request())
    resolved = result.queue_map.tag_queries
    assert [q.queue for q in resolved[any_price].queues] == sorted([topic[btc_60], topic[eth_60]])
    assert [q.queue for q in resolved[all_btc_price].queues] == [topic[btc_60]]
    assert list(resolved[nothing].queues) == []
    first = resolved[all_btc_price].queues[0]
    assert (first.node_id, first.interval, list(first.tags)) == (btc_60, 60, ["btc", "price"])
    # Tag-query nodes get queues of their own like every node.
    assert set(result.queue_map.queues) == {any_price, all_btc_price, nothing}


async def test_tag_query_sees_the_dags_own_new_nodes(env: DiffEnv) -> None:
    builder = DagBuilder()
    src = builder.node("StreamInput", tags=["sol"], params={"s": "SOL"})
    query = builder.tag_query(["sol"], interval=60)
    result = await env.service().diff(builder.request())
    assert [q.node_id for q in result.queue_map.tag_queries[query].queues] == [src]


async def test_topic_creation_failure_writes_nothing(env: DiffEnv) -> None:
    builder, _ = strategy_dag()
    env.admin.fail_next(operation="create")
    error = await expect_rejected(
        env,
        builder.request(),
        E.ERROR_CODE_QUEUE_CREATE_FAILED,
        None,
        status=503,
    )
    assert error.retryable


class FailingApplyStore(InMemoryGraphStore):
    """The in-memory store, with `apply` refused while `down` (a graph outage)."""

    down = True

    async def apply(self, changes: GraphChanges) -> Applied:
        if self.down:
            raise GraphStoreUnavailableError("neo4j is down")
        return await super().apply(changes)


async def test_graph_failure_after_topics_leaves_the_graph_unchanged(env: DiffEnv) -> None:
    store = FailingApplyStore(clock=env.clock)
    env.store = store
    builder, ids = strategy_dag()
    with pytest.raises(QmtlError) as caught:
        await env.service().diff(builder.request())
    assert caught.value.code == E.ERROR_CODE_UNAVAILABLE
    assert caught.value.retryable
    assert await store.get_nodes(ids) == {}
    created = set(await env.admin.list_topics())
    assert len(created) == 3  # topics come first and stay (docs/operations/diff.md)
    store.down = False
    result = await env.service().diff(builder.request())
    assert set(queues(result).values()) == created
    assert list(result.new_node_ids) == ids


class BarrierStore(InMemoryGraphStore):
    """Holds every `get_nodes` until `parties` diffs have looked up, so they all race."""

    def __init__(self, parties: int, *, clock: Callable[[], float]) -> None:
        super().__init__(clock=clock)
        self._waiting = parties
        self._all_here = asyncio.Event()

    async def get_nodes(self, node_ids: Sequence[str]) -> dict[str, StoredNode]:
        found = await super().get_nodes(node_ids)
        self._waiting -= 1
        if self._waiting <= 0:
            self._all_here.set()
        await self._all_here.wait()
        return found


async def test_two_concurrent_diffs_of_one_new_dag_agree(env: DiffEnv) -> None:
    store = BarrierStore(2, clock=env.clock)
    builder, ids = strategy_dag()
    one, two = await asyncio.gather(
        env.service(store=store).diff(builder.request("strategy-a")),
        env.service(store=store).diff(builder.request("strategy-b")),
    )
    assert queues(one) == queues(two)
    assert sorted([list(one.new_node_ids), list(two.new_node_ids)]) == [[], ids]
    stored = await store.get_nodes(ids)
    assert all(s.ref_count == 2 for s in stored.values())


async def test_a_large_dag_diffs_and_rediffs(env: DiffEnv) -> None:
    builder = DagBuilder()
    ids = chain(builder, 2_000)
    first = await env.service().diff(builder.request())
    assert len(first.new_node_ids) == 2_000
    again = await env.service().diff(builder.request())
    assert list(again.reused_node_ids) == ids
    assert queues(again) == queues(first)


def test_make_node_ids_are_real() -> None:
    node = make_node("Node", params={"seed": 1, "window": 5})
    assert node.node_id == make_node("Node", params={"window": 5}).node_id
