"""The GraphStore's transactional outbox, on every adapter (in-memory, Neo4j).

A state change and the events announcing it commit together or not at all; the relay reads
the pending entries oldest first and acks them (docs/operations/outbox.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from qmtl.runtime.graphstore import (
    MAX_BATCH,
    MAX_OUTBOX_PAYLOAD_BYTES,
    GraphBatchTooLargeError,
    GraphChanges,
    GraphStore,
    InvalidGraphInputError,
    OutboxMessage,
    StrategyRefs,
)

from .graphstore_neo4j import SharedGraph, shared_graph
from .graphstore_support import GRAPH_ADAPTERS, ManualClock, node, open_graph_store

__all__ = ["shared_graph"]


def always(entry: OutboxMessage) -> Callable[[int], OutboxMessage]:
    """An announcement of `entry` whatever the version."""
    return lambda _: entry


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


def message(name: str, payload: bytes = b"") -> OutboxMessage:
    return OutboxMessage(id=f"id-{name}", topic="qmtl.events.dag", payload=payload or name.encode())


async def pending_ids(store: GraphStore) -> list[str]:
    return [entry.id for entry in await store.outbox_pending()]


async def test_a_changed_answer_writes_its_announcement_with_the_new_version(
    graph: GraphUnderTest,
) -> None:
    asked: list[int] = []

    def announce(version: int) -> OutboxMessage:
        asked.append(version)
        return message(f"v{version}", payload=bytes([0, 255, version]))

    assert await graph.store.record_answer("q", "e1", announce=announce) == (1, True)
    assert await graph.store.record_answer("q", "e1", announce=announce) == (1, False)
    graph.clock.advance(1)
    assert await graph.store.record_answer("q", "e2", announce=announce) == (2, True)

    assert asked == [1, 2]  # an unchanged answer is not announced
    entries = await graph.store.outbox_pending()
    assert [(e.id, e.topic, e.payload) for e in entries] == [
        ("id-v1", "qmtl.events.dag", bytes([0, 255, 1])),
        ("id-v2", "qmtl.events.dag", bytes([0, 255, 2])),
    ]
    assert entries[1].created_at == entries[0].created_at + 1


async def test_an_announcement_of_none_writes_nothing(graph: GraphUnderTest) -> None:
    assert await graph.store.record_answer("q", "e1", announce=lambda _: None) == (1, True)
    assert await graph.store.outbox_pending() == []


@pytest.mark.parametrize(
    ("bad", "error", "field"),
    [
        (OutboxMessage("", "t", b"x"), InvalidGraphInputError, "announce.id"),
        (OutboxMessage("i", "", b"x"), InvalidGraphInputError, "announce.topic"),
        (
            OutboxMessage("i", "t", b"x" * (MAX_OUTBOX_PAYLOAD_BYTES + 1)),
            GraphBatchTooLargeError,
            "announce.payload",
        ),
    ],
)
async def test_a_malformed_announcement_records_nothing(
    graph: GraphUnderTest, bad: OutboxMessage, error: type[Exception], field: str
) -> None:
    with pytest.raises(error) as caught:
        await graph.store.record_answer("q", "e1", announce=lambda _: bad)
    assert getattr(caught.value, "field", None) == field
    # Neither the version bump nor an entry survived: the next record is still version 1.
    assert await graph.store.outbox_pending() == []
    assert await graph.store.record_answer("q", "e1") == (1, True)


async def test_delete_queues_announces_only_the_queues_it_deleted(graph: GraphUnderTest) -> None:
    a, b, c = node("a"), node("b"), node("c")
    await graph.store.apply(GraphChanges(nodes=(a, b, c)))
    await graph.store.add_strategy_refs("s1", [b.node_id])  # b is in use: kept
    announce = {t: message(t) for t in (a.topic, b.topic, c.topic, "unknown_topic")}

    deleted = await graph.store.delete_queues(
        [c.topic, b.topic, a.topic, "unknown_topic"], announce=announce
    )

    assert deleted == [c.topic, a.topic]
    assert await pending_ids(graph.store) == [f"id-{c.topic}", f"id-{a.topic}"]


async def test_a_malformed_delete_announcement_deletes_nothing(graph: GraphUnderTest) -> None:
    a = node("a")
    await graph.store.apply(GraphChanges(nodes=(a,)))
    with pytest.raises(InvalidGraphInputError):
        await graph.store.delete_queues([a.topic], announce={a.topic: OutboxMessage("", "t", b"x")})
    assert a.node_id in await graph.store.get_nodes([a.node_id])
    assert await graph.store.outbox_pending() == []


async def test_pending_is_oldest_first_and_bounded_and_ack_removes_once(
    graph: GraphUnderTest,
) -> None:
    for index in range(5):
        await graph.store.record_answer(f"q{index}", "e", announce=always(message(str(index))))
        graph.clock.advance(1)

    assert [e.id for e in await graph.store.outbox_pending(limit=3)] == ["id-0", "id-1", "id-2"]
    assert await graph.store.outbox_ack(["id-1", "id-0", "id-0", "id-unknown"]) == 2
    assert await graph.store.outbox_ack(["id-1"]) == 0  # a second ack is harmless
    assert await pending_ids(graph.store) == ["id-2", "id-3", "id-4"]
    assert await graph.store.outbox_ack([]) == 0


async def test_one_id_written_twice_is_one_entry(graph: GraphUnderTest) -> None:
    same = message("same")
    await graph.store.record_answer("q1", "e", announce=lambda _: same)
    await graph.store.record_answer("q2", "e", announce=lambda _: same)
    assert await pending_ids(graph.store) == ["id-same"]


async def test_outbox_arguments_are_checked(graph: GraphUnderTest) -> None:
    for limit in (0, MAX_BATCH + 1):
        with pytest.raises(InvalidGraphInputError) as caught:
            await graph.store.outbox_pending(limit=limit)
        assert caught.value.field == "limit"
    with pytest.raises(InvalidGraphInputError) as caught:
        await graph.store.outbox_ack(["id", ""])
    assert caught.value.field == "ids[1]"


async def test_a_release_does_not_touch_the_outbox(graph: GraphUnderTest) -> None:
    a = node("a")
    await graph.store.apply(GraphChanges(nodes=(a,), refs=StrategyRefs("s1", (a.node_id,))))
    await graph.store.record_answer("q", "e", announce=lambda _: message("kept"))
    await graph.store.release_strategy("s1")
    assert await pending_ids(graph.store) == ["id-kept"]
