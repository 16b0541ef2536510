"""The GraphStore contract: every adapter (in-memory, Neo4j) behaves exactly like this.

Time is a manual clock shared with the adapter, so orphan ages move only when a test says so.
The Neo4j adapter runs on the real server, on a label prefix migrated once for the session
with the real migrations and emptied after each test (graphstore_neo4j.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest

from qmtl.common.v1 import match_mode_pb2
from qmtl.runtime.errors import ErrorCode
from qmtl.runtime.graphstore import (
    MAX_BATCH,
    MAX_SNAPSHOT_BYTES,
    NOT_STORED,
    DiffSnapshot,
    GraphBatchTooLargeError,
    GraphChanges,
    GraphStore,
    GraphStoreError,
    InvalidGraphInputError,
    MatchMode,
    MissingDependencyError,
    NodeWrite,
    StrategyRefs,
    TopicConflictError,
    UnknownNodeError,
)

from .graphstore_neo4j import SharedGraph, shared_graph
from .graphstore_support import GRAPH_ADAPTERS, ManualClock, node, open_graph_store

__all__ = ["shared_graph"]  # the session fixture, imported so pytest finds it

ANY = match_mode_pb2.MATCH_MODE_ANY
ALL = match_mode_pb2.MATCH_MODE_ALL
UNSPECIFIED = match_mode_pb2.MATCH_MODE_UNSPECIFIED


@dataclass
class GraphUnderTest:
    store: GraphStore
    clock: ManualClock


@pytest.fixture(params=GRAPH_ADAPTERS)
async def graph(
    request: pytest.FixtureRequest, shared_graph: SharedGraph
) -> AsyncIterator[GraphUnderTest]:
    clock = ManualClock()
    async with open_graph_store(request.param, clock, shared_graph) as store:
        yield GraphUnderTest(store, clock)


def ids(*names: str) -> list[str]:
    return [f"blake3:{name}" for name in names]


async def topics_for(
    store: GraphStore, tags: list[str], interval: int = 0, mode: MatchMode = ANY
) -> list[str]:
    return [q.topic for q in await store.queues_by_tags(tags, interval, mode)]


# --- apply --------------------------------------------------------------------------------


async def test_apply_stores_nodes_with_their_queues(graph: GraphUnderTest) -> None:
    src = node("src", tags=("price", "BTC"))
    ma = node("ma", deps=("src",))

    applied = await graph.store.apply(GraphChanges(nodes=(src, ma)))

    assert applied.created == (src.node_id, ma.node_id)
    assert applied.topics == {src.node_id: src.topic, ma.node_id: ma.topic}
    stored = await graph.store.get_nodes([src.node_id, ma.node_id, "blake3:absent"])
    assert set(stored) == {src.node_id, ma.node_id}
    s = stored[src.node_id]
    assert (s.topic, s.interval, s.period, s.tags) == (src.topic, 60, 5, ("BTC", "price"))
    assert (s.code_hash, s.schema_compat_id, s.created_at) == ("code", "compat-v1", graph.clock.now)
    assert stored[ma.node_id].dependencies == (src.node_id,)
    assert s.ref_count == 0


async def test_reapplying_a_node_keeps_its_queue(graph: GraphUnderTest) -> None:
    first = node("n", tags=("BTC",))
    await graph.store.apply(GraphChanges(nodes=(first,)))
    graph.clock.advance(10)

    # Another DAG Manager (or a restart) proposes another name for the same node.
    again = replace(first, topic="asset_Node_n_other", tags=("ETH",), schema_hash="s2")
    applied = await graph.store.apply(GraphChanges(nodes=(again,)))

    assert applied.topics == {first.node_id: first.topic}
    assert applied.created == ()
    stored = (await graph.store.get_nodes([first.node_id]))[first.node_id]
    assert stored.topic == first.topic
    assert stored.created_at == graph.clock.now - 10
    assert stored.tags == ("BTC", "ETH")  # tags are not identity: they accumulate
    assert stored.schema_hash == "s2"
    assert await topics_for(graph.store, ["BTC", "ETH"]) == [first.topic]
    # The proposed name was never bound, so a new node may take it.
    await graph.store.apply(GraphChanges(nodes=(node("m", topic="asset_Node_n_other"),)))


async def test_identical_change_set_twice_is_idempotent(graph: GraphUnderTest) -> None:
    changes = GraphChanges(
        nodes=(node("a", tags=("x",)), node("b", deps=("a",))),
        refs=StrategyRefs("s1", tuple(ids("a", "b"))),
    )
    first = await graph.store.apply(changes)
    second = await graph.store.apply(changes)

    assert second.topics == first.topics
    assert second.created == ()
    stored = await graph.store.get_nodes(ids("a", "b"))
    assert [n.ref_count for n in stored.values()] == [1, 1]


async def test_dependencies_may_be_stored_or_in_the_same_change_set(
    graph: GraphUnderTest,
) -> None:
    await graph.store.apply(GraphChanges(nodes=(node("src"),)))
    await graph.store.apply(GraphChanges(nodes=(node("sig", deps=("ma", "src")), node("ma"))))
    assert set(await graph.store.get_nodes(ids("src", "ma", "sig"))) == set(ids("src", "ma", "sig"))


FAILING_LAST_ENTRY = {
    "topic taken by another node": (
        GraphChanges(nodes=(node("new1", tags=("T",)), node("new2", topic="asset_Node_owner_v1"))),
        TopicConflictError,
        "nodes[1].topic",
    ),
    "unknown dependency": (
        GraphChanges(nodes=(node("new1", tags=("T",)), node("new2", deps=("ghost",)))),
        MissingDependencyError,
        "nodes[1].dependencies",
    ),
    "ref to an unknown node": (
        GraphChanges(
            nodes=(node("new1", tags=("T",)),),
            refs=StrategyRefs("s1", ("blake3:new1", "blake3:ghost")),
        ),
        UnknownNodeError,
        "refs.node_ids[1]",
    ),
    "node twice in one change set": (
        GraphChanges(nodes=(node("new1", tags=("T",)), node("new1", topic="other"))),
        InvalidGraphInputError,
        "nodes[1].node_id",
    ),
    "negative interval": (
        GraphChanges(nodes=(node("new1", tags=("T",)), node("new2", interval=-60))),
        InvalidGraphInputError,
        "nodes[1].interval",
    ),
}


@pytest.mark.parametrize("case", list(FAILING_LAST_ENTRY))
async def test_a_failing_change_set_writes_nothing(graph: GraphUnderTest, case: str) -> None:
    changes, error, field = FAILING_LAST_ENTRY[case]
    old = node("old", tags=("O",))
    await graph.store.apply(GraphChanges(nodes=(old, node("owner"))))
    # A failing change set that also touches a stored node must not touch it either.
    failing = replace(changes, nodes=(replace(old, tags=("T",)), *changes.nodes))
    field = field.replace("nodes[1]", "nodes[2]")

    with pytest.raises(error) as raised:
        await graph.store.apply(failing)

    assert raised.value.field == field
    assert await graph.store.get_nodes(ids("new1", "new2")) == {}
    assert await topics_for(graph.store, ["T"]) == []
    stored = (await graph.store.get_nodes([old.node_id]))[old.node_id]
    assert (stored.tags, stored.ref_count) == (("O",), 0)
    assert await graph.store.release_strategy("s1") == []


async def test_errors_map_to_typed_4xx_with_the_field(graph: GraphUnderTest) -> None:
    await graph.store.apply(GraphChanges(nodes=(node("a"),)))
    with pytest.raises(TopicConflictError) as raised:
        await graph.store.apply(GraphChanges(nodes=(node("b", topic="asset_Node_a_v1"),)))
    error = raised.value.to_qmtl_error()
    assert error.code == ErrorCode.ERROR_CODE_DUPLICATE
    assert error.details == {"field": "nodes[0].topic"}
    assert error.retryable
    assert 400 <= error.http_status < 500


async def test_calls_over_the_batch_limit_are_refused(graph: GraphUnderTest) -> None:
    too_many = [f"blake3:{i}" for i in range(MAX_BATCH + 1)]
    with pytest.raises(GraphBatchTooLargeError):
        await graph.store.get_nodes(too_many)
    with pytest.raises(GraphBatchTooLargeError):
        await graph.store.delete_queues(too_many)
    assert await graph.store.get_nodes(too_many[:MAX_BATCH]) == {}


# --- strategy references, orphans, deletion -------------------------------------------------


async def test_reference_counts_are_distinct_strategies(graph: GraphUnderTest) -> None:
    await graph.store.apply(GraphChanges(nodes=(node("shared"), node("own"))))
    await graph.store.add_strategy_refs("s1", ids("shared", "own"))
    await graph.store.add_strategy_refs("s1", ids("shared"))  # a repeat changes nothing
    await graph.store.add_strategy_refs("s2", ids("shared"))

    stored = await graph.store.get_nodes(ids("shared", "own"))
    assert stored["blake3:shared"].ref_count == 2
    assert stored["blake3:own"].ref_count == 1
    assert all(n.orphaned_since is None for n in stored.values())


async def test_release_makes_orphans_of_nodes_no_strategy_uses(graph: GraphUnderTest) -> None:
    await graph.store.apply(
        GraphChanges(
            nodes=(node("shared"), node("own")),
            refs=StrategyRefs("s1", tuple(ids("shared", "own"))),
        )
    )
    await graph.store.add_strategy_refs("s2", ids("shared"))
    graph.clock.advance(5)

    assert await graph.store.release_strategy("s1") == ids("own")
    assert await graph.store.release_strategy("s1") == []  # already released
    assert await graph.store.release_strategy("never-seen") == []
    stored = await graph.store.get_nodes(ids("shared", "own"))
    assert (stored["blake3:shared"].ref_count, stored["blake3:shared"].orphaned_since) == (1, None)
    assert (stored["blake3:own"].ref_count, stored["blake3:own"].orphaned_since) == (
        0,
        graph.clock.now,
    )
    assert await graph.store.release_strategy("s2") == ids("shared")


async def test_unknown_node_in_refs_adds_nothing(graph: GraphUnderTest) -> None:
    await graph.store.apply(GraphChanges(nodes=(node("a"),)))
    with pytest.raises(UnknownNodeError) as raised:
        await graph.store.add_strategy_refs("s1", ids("a", "ghost"))
    assert raised.value.field == "node_ids[1]"
    assert (await graph.store.get_nodes(ids("a")))["blake3:a"].ref_count == 0
    with pytest.raises(InvalidGraphInputError):
        await graph.store.add_strategy_refs("", ids("a"))


async def test_orphans_are_listed_once_old_enough(graph: GraphUnderTest) -> None:
    await graph.store.apply(GraphChanges(nodes=(node("unused"),)))  # an orphan from birth
    graph.clock.advance(10)
    await graph.store.apply(
        GraphChanges(nodes=(node("used"),), refs=StrategyRefs("s1", tuple(ids("used"))))
    )
    await graph.store.release_strategy("s1")

    assert [o.node_id for o in await graph.store.orphans(older_than=10)] == ids("unused")
    graph.clock.advance(10)
    orphans = await graph.store.orphans(older_than=10)
    assert [o.node_id for o in orphans] == ids("unused", "used")  # longest-orphaned first
    assert orphans[1].topic == "asset_Node_used_v1"
    assert orphans[1].orphaned_since == graph.clock.now - 10
    assert [o.node_id for o in await graph.store.orphans(older_than=0, limit=1)] == ids("unused")


async def test_delete_queues_removes_orphans_only(graph: GraphUnderTest) -> None:
    await graph.store.apply(
        GraphChanges(nodes=(node("gone", tags=("T",)), node("kept", tags=("T",))))
    )
    await graph.store.add_strategy_refs("s1", ids("kept"))

    deleted = await graph.store.delete_queues(
        ["asset_Node_kept_v1", "no-such-topic", "asset_Node_gone_v1"]
    )

    assert deleted == ["asset_Node_gone_v1"]
    assert set(await graph.store.get_nodes(ids("gone", "kept"))) == set(ids("kept"))
    assert await topics_for(graph.store, ["T"]) == ["asset_Node_kept_v1"]
    assert await graph.store.orphans(older_than=0) == []
    # The topic is free again, and the node id may come back with a fresh queue.
    applied = await graph.store.apply(GraphChanges(nodes=(node("gone"),)))
    assert applied.created == tuple(ids("gone"))


async def test_a_queue_referenced_again_during_grace_survives(graph: GraphUnderTest) -> None:
    await graph.store.apply(
        GraphChanges(nodes=(node("n"),), refs=StrategyRefs("s1", tuple(ids("n"))))
    )
    await graph.store.release_strategy("s1")
    graph.clock.advance(100)
    candidates = await graph.store.orphans(older_than=50)
    assert [o.node_id for o in candidates] == ids("n")

    # A resubmission lands between the GC's listing and its delete.
    await graph.store.apply(
        GraphChanges(nodes=(node("n"),), refs=StrategyRefs("s2", tuple(ids("n"))))
    )

    assert await graph.store.delete_queues([o.topic for o in candidates]) == []
    stored = (await graph.store.get_nodes(ids("n")))["blake3:n"]
    assert (stored.ref_count, stored.orphaned_since) == (1, None)
    assert await graph.store.orphans(older_than=0) == []


# --- tag lookup -----------------------------------------------------------------------------


@pytest.fixture
async def tagged(graph: GraphUnderTest) -> GraphStore:
    await graph.store.apply(
        GraphChanges(
            nodes=(
                node("n1", tags=("BTC", "price")),
                node("n2", tags=("BTC",)),
                node("n3", tags=("price",), interval=300),
                node("n4", tags=("ETH", "price")),
                node("n5"),
            )
        )
    )
    return graph.store


LOOKUPS = [
    (["BTC", "price"], 0, ANY, ["n1", "n2", "n3", "n4"]),
    (["BTC", "price"], 0, UNSPECIFIED, ["n1", "n2", "n3", "n4"]),
    (["BTC", "price"], 0, ALL, ["n1"]),
    (["price", "BTC", "price"], 60, ALL, ["n1"]),
    (["BTC", "price"], 60, ANY, ["n1", "n2", "n4"]),
    (["price"], 300, ALL, ["n3"]),
    (["price"], 120, ANY, []),
    (["BTC", "nope"], 0, ALL, []),
    (["BTC", "nope"], 0, ANY, ["n1", "n2"]),
    ([], 0, ANY, []),
    ([], 0, ALL, []),
]


@pytest.mark.parametrize(("tags", "interval", "mode", "expected"), LOOKUPS)
async def test_queues_by_tags(
    tagged: GraphStore, tags: list[str], interval: int, mode: MatchMode, expected: list[str]
) -> None:
    answer = await tagged.queues_by_tags(tags, interval, mode)
    assert [q.node_id for q in answer] == ids(*expected)
    assert [q.topic for q in answer] == [f"asset_Node_{n}_v1" for n in expected]


async def test_tag_lookup_answers_carry_the_queue(tagged: GraphStore) -> None:
    [answer] = await tagged.queues_by_tags(["ETH"], 60, ANY)
    assert (answer.topic, answer.interval, answer.tags, answer.is_global) == (
        "asset_Node_n4_v1",
        60,
        ("ETH", "price"),
        False,
    )


async def test_tag_lookup_rejects_bad_arguments(tagged: GraphStore) -> None:
    with pytest.raises(InvalidGraphInputError) as raised:
        await tagged.queues_by_tags(["BTC"], -1, ANY)
    assert raised.value.field == "interval"
    with pytest.raises(GraphStoreError):
        await tagged.queues_by_tags(["BTC", ""], 0, ANY)


# --- tag-query answer versions --------------------------------------------------------------


async def test_record_answer_versions_each_key_by_etag(graph: GraphUnderTest) -> None:
    assert await graph.store.record_answer("q1", "etag-a") == (1, True)
    assert await graph.store.record_answer("q1", "etag-a") == (1, False)
    assert await graph.store.record_answer("q1", "etag-b") == (2, True)
    assert await graph.store.record_answer("q1", "etag-b") == (2, False)
    # Going back to an earlier answer is a change too: versions only move forward.
    assert await graph.store.record_answer("q1", "etag-a") == (3, True)
    # Keys are independent.
    assert await graph.store.record_answer("q2", "etag-b") == (1, True)
    assert await graph.store.record_answer("q1", "etag-a") == (3, False)


async def test_record_answer_accepts_an_empty_etag_and_rejects_an_empty_key(
    graph: GraphUnderTest,
) -> None:
    assert await graph.store.record_answer("q", "") == (1, True)
    assert await graph.store.record_answer("q", "") == (1, False)
    with pytest.raises(InvalidGraphInputError) as raised:
        await graph.store.record_answer("", "etag")
    assert raised.value.field == "key"


# --- diff snapshots -------------------------------------------------------------------------


def snap(key: str, payload: bytes = b"answer") -> DiffSnapshot:
    return DiffSnapshot(key=key, payload=payload)


async def apply_for(
    store: GraphStore, strategy: str, *nodes: NodeWrite, snapshot: DiffSnapshot | None = None
) -> None:
    refs = StrategyRefs(strategy, tuple(n.node_id for n in nodes))
    await store.apply(GraphChanges(nodes=nodes, refs=refs, snapshot=snapshot))


async def test_a_snapshot_answers_its_key_until_replaced(graph: GraphUnderTest) -> None:
    store = graph.store
    a, b = node("a", tags=("btc",)), node("b", deps=("a",))
    assert await store.snapshot("s1", "k1") is None
    await apply_for(store, "s1", a, b, snapshot=snap("k1", b"\x00\xffbytes"))
    assert await store.snapshot("s1", "k1") == b"\x00\xffbytes"
    assert await store.snapshot("s1", "k2") is None
    assert await store.snapshot("s2", "k1") is None
    # An unchanged resubmission keeps it valid, under the same key.
    await apply_for(store, "s1", a, b, snapshot=snap("k1", b"again"))
    assert await store.snapshot("s1", "k1") == b"again"
    # The strategy's next change set replaces it, by another snapshot or by none.
    await apply_for(store, "s1", a, b, snapshot=snap("k2"))
    assert await store.snapshot("s1", "k1") is None
    assert await store.snapshot("s1", "k2") == b"answer"
    await apply_for(store, "s1", a, b)
    assert await store.snapshot("s1", "k2") is None


async def test_a_snapshot_lapses_when_a_node_it_used_is_rewritten(graph: GraphUnderTest) -> None:
    store = graph.store
    a = node("a", tags=("btc",))
    await apply_for(store, "s1", a, snapshot=snap("k"))
    # Another strategy writing the same node unchanged does not touch it...
    await apply_for(store, "s2", a)
    assert await store.snapshot("s1", "k") == b"answer"
    # ...but a new schema hash, a new tag or a new global flag does.
    await apply_for(store, "s2", replace(a, schema_hash="other"))
    assert await store.snapshot("s1", "k") is None
    for change in ({"tags": ("btc", "eth")}, {"is_global": True}):
        await apply_for(store, "s1", a, snapshot=snap("k"))
        assert await store.snapshot("s1", "k") == b"answer"
        await apply_for(store, "s2", replace(a, **change))  # type: ignore[arg-type]
        assert await store.snapshot("s1", "k") is None


async def test_a_snapshot_lapses_with_new_refs_and_on_release(graph: GraphUnderTest) -> None:
    store = graph.store
    a, b = node("a"), node("b")
    await store.apply(GraphChanges(nodes=(a, b)))
    await apply_for(store, "s1", a, snapshot=snap("k"))
    await store.add_strategy_refs("s1", [a.node_id])  # already used: nothing changes
    assert await store.snapshot("s1", "k") == b"answer"
    await store.add_strategy_refs("s1", [b.node_id])
    assert await store.snapshot("s1", "k") is None
    await apply_for(store, "s1", a, b, snapshot=snap("k"))
    assert await store.release_strategy("s1") == sorted([a.node_id, b.node_id])
    assert await store.snapshot("s1", "k") is None
    # Used again after the release: the old answer is gone for good.
    await store.add_strategy_refs("s1", [a.node_id, b.node_id])
    assert await store.snapshot("s1", "k") is None


async def test_a_snapshot_needs_refs_a_key_and_a_bounded_payload(graph: GraphUnderTest) -> None:
    store = graph.store
    a = node("a")
    with pytest.raises(InvalidGraphInputError) as no_refs:
        await store.apply(GraphChanges(nodes=(a,), snapshot=snap("k")))
    assert no_refs.value.field == "snapshot"
    with pytest.raises(InvalidGraphInputError) as no_key:
        await apply_for(store, "s1", a, snapshot=snap(""))
    assert no_key.value.field == "snapshot.key"
    with pytest.raises(GraphBatchTooLargeError) as too_big:
        await apply_for(store, "s1", a, snapshot=snap("k", bytes(MAX_SNAPSHOT_BYTES + 1)))
    assert too_big.value.field == "snapshot.payload"
    assert await store.get_nodes([a.node_id]) == {}  # nothing written


async def test_a_snapshot_is_recorded_only_if_what_it_saw_still_holds(
    graph: GraphUnderTest,
) -> None:
    store = graph.store
    a, b = node("a", tags=("btc",)), node("b")
    await apply_for(store, "s2", a)
    [stored] = (await store.get_nodes([a.node_id])).values()
    assert stored.rev == 0
    await apply_for(store, "s2", replace(a, tags=("eth",)))  # a rewrite: rev 1
    assert (await store.get_nodes([a.node_id]))[a.node_id].rev == 1

    stale = DiffSnapshot("k", b"x", seen={a.node_id: 0, b.node_id: NOT_STORED})
    await apply_for(store, "s1", a, b, snapshot=stale)
    assert await store.snapshot("s1", "k") is None  # it had not seen the rewrite
    # b exists now: a diff that planned it as new raced another writer.
    raced = DiffSnapshot("k", b"x", seen={a.node_id: 1, b.node_id: NOT_STORED})
    await apply_for(store, "s1", a, b, snapshot=raced)
    assert await store.snapshot("s1", "k") is None
    fresh = DiffSnapshot("k", b"x", seen={a.node_id: 1, b.node_id: 0})
    await apply_for(store, "s1", a, b, snapshot=fresh)
    assert await store.snapshot("s1", "k") == b"x"
