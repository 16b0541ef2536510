"""ReleaseStrategy on the in-memory graph store: orphaning, idempotence, typed errors."""

from __future__ import annotations

import pytest

from qmtl.dagmanager.v1.release_messages_pb2 import ReleaseStrategyRequest
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.graphstore import (
    GraphChanges,
    GraphStoreUnavailableError,
    InMemoryGraphStore,
    StrategyRefs,
)
from qmtl.services.dag_manager.release import release_strategy
from tests.contract.graphstore_support import ManualClock, node


async def shared_graph() -> InMemoryGraphStore:
    """s1 uses a, b, c; s2 uses b; nodes are named so sorted ids differ from insert order."""
    store = InMemoryGraphStore(clock=ManualClock())
    await store.apply(
        GraphChanges(
            nodes=(node("c"), node("a"), node("b")),
            refs=StrategyRefs("s1", ("blake3:c", "blake3:a", "blake3:b")),
        )
    )
    await store.add_strategy_refs("s2", ["blake3:b"])
    return store


async def test_release_orphans_the_nodes_no_other_strategy_uses_sorted() -> None:
    store = await shared_graph()
    answer = await release_strategy(store, ReleaseStrategyRequest(strategy_id="s1"))
    assert answer.strategy_id == "s1"
    assert list(answer.orphaned_node_ids) == ["blake3:a", "blake3:c"]
    stored = await store.get_nodes(["blake3:a", "blake3:b"])
    assert stored["blake3:a"].ref_count == 0
    assert stored["blake3:a"].orphaned_since is not None
    assert stored["blake3:b"].ref_count == 1
    assert stored["blake3:b"].orphaned_since is None


async def test_releasing_again_or_an_unknown_strategy_orphans_nothing() -> None:
    store = await shared_graph()
    await release_strategy(store, ReleaseStrategyRequest(strategy_id="s1"))
    again = await release_strategy(store, ReleaseStrategyRequest(strategy_id="s1"))
    unknown = await release_strategy(store, ReleaseStrategyRequest(strategy_id="nobody"))
    assert list(again.orphaned_node_ids) == []
    assert list(unknown.orphaned_node_ids) == []
    last = await release_strategy(store, ReleaseStrategyRequest(strategy_id="s2"))
    assert list(last.orphaned_node_ids) == ["blake3:b"]


async def test_an_empty_strategy_id_is_a_validation_error() -> None:
    store = await shared_graph()
    with pytest.raises(QmtlError) as caught:
        await release_strategy(store, ReleaseStrategyRequest(strategy_id=""))
    assert caught.value.wire_code == "E_VALIDATION"
    assert caught.value.details == {"field": "strategy_id"}
    assert (await store.get_nodes(["blake3:a"]))["blake3:a"].ref_count == 1


async def test_any_id_a_diff_accepts_can_be_released() -> None:
    # The diff only refuses an empty strategy_id; a stricter release would strand strategies.
    odd = " " + "x" * 5000
    store = InMemoryGraphStore(clock=ManualClock())
    await store.apply(GraphChanges(nodes=(node("a"),), refs=StrategyRefs(odd, ("blake3:a",))))
    answer = await release_strategy(store, ReleaseStrategyRequest(strategy_id=odd))
    assert list(answer.orphaned_node_ids) == ["blake3:a"]


class UnreachableStore(InMemoryGraphStore):
    async def release_strategy(self, strategy_id: str) -> list[str]:
        raise GraphStoreUnavailableError("neo4j unreachable")


async def test_an_unreachable_store_is_a_retryable_unavailable_error() -> None:
    with pytest.raises(QmtlError) as caught:
        await release_strategy(UnreachableStore(), ReleaseStrategyRequest(strategy_id="s1"))
    assert caught.value.wire_code == "E_UNAVAILABLE"
    assert caught.value.retryable
