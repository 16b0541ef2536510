"""The OutboxStore behaviour, on every outbox: MemoryOutbox, RedisOutbox (real Redis) and the
in-memory GraphStore's outbox.

What the relay relies on: entries come back oldest first with what was written, an id is
pending at most once, an ack removes exactly its ids, and a relay drain publishes everything
in order, drops a corrupted entry instead of stopping at it, and leaves the outbox empty
(docs/operations/outbox.md). Each Redis outbox has a key prefix of its own, deleted after; a
Redis that does not answer fails the test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import pytest

from qmtl.events.v1 import event_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import (
    DAG_EVENTS,
    OPS_EVENTS,
    InMemoryEventBus,
    InvalidEventError,
    decode,
)
from qmtl.runtime.graphstore import (
    DEFAULT_OUTBOX_PAGE,
    MAX_BATCH,
    MAX_OUTBOX_PAYLOAD_BYTES,
    InMemoryGraphStore,
    OutboxEntry,
    OutboxMessage,
)
from qmtl.runtime.outbox import (
    MemoryOutbox,
    OutboxRelay,
    OutboxTooLargeError,
    RedisOutbox,
    RedisOutboxKeys,
)
from qmtl.runtime.port_errors import PortError
from qmtl.runtime.restart import Restart

from .conftest import connect_redis, delete_queue_keys
from .graphstore_support import ManualClock


class Outbox(Protocol):
    async def append(self, topic: str, events: Sequence[event_pb2.Event]) -> int: ...

    async def outbox_pending(self, limit: int = DEFAULT_OUTBOX_PAGE) -> list[OutboxEntry]: ...

    async def outbox_ack(self, ids: Sequence[str]) -> int: ...

    async def outbox_size(self) -> int: ...


def always(message: OutboxMessage) -> Callable[[int], OutboxMessage]:
    """An announcement of `message` whatever the version."""
    return lambda _: message


class GraphStoreOutbox:
    """The in-memory GraphStore's outbox behind the same calls: each appended event is
    announced by a state change of its own (a tag-query answer bump)."""

    def __init__(self) -> None:
        self.graph = InMemoryGraphStore(clock=ManualClock())

    async def append(self, topic: str, events: Sequence[event_pb2.Event]) -> int:
        before = await self.outbox_size()
        for event in events:
            message = OutboxMessage(event.id, topic, event.SerializeToString())
            await self.graph.record_answer(uuid.uuid4().hex, "e", announce=always(message))
        return await self.outbox_size() - before

    async def outbox_pending(self, limit: int = DEFAULT_OUTBOX_PAGE) -> list[OutboxEntry]:
        return await self.graph.outbox_pending(limit)

    async def outbox_ack(self, ids: Sequence[str]) -> int:
        return await self.graph.outbox_ack(ids)

    async def outbox_size(self) -> int:
        return len(await self.graph.outbox_pending(MAX_BATCH))


@dataclass
class OutboxUnderTest:
    store: Outbox
    corrupt: Callable[[str, bytes], Awaitable[None]]
    """Leaves a pending entry `id` whose stored bytes are `raw`, as a damaged store would."""


@asynccontextmanager
async def open_outbox(kind: str, endpoints: ServiceEndpoints) -> AsyncIterator[OutboxUnderTest]:
    if kind == "memory":
        memory = MemoryOutbox()

        async def corrupt_in_memory(entry_id: str, raw: bytes) -> None:
            memory._entries[entry_id] = OutboxEntry(entry_id, DAG_EVENTS, raw, 0.0)

        yield OutboxUnderTest(memory, corrupt_in_memory)
    elif kind == "redis":
        client = await connect_redis(endpoints.redis_url)
        prefix = f"test:outbox:{uuid.uuid4().hex}:"
        keys = RedisOutboxKeys.for_prefix(prefix)

        async def corrupt_in_redis(entry_id: str, raw: bytes) -> None:
            await client.hset(keys.entries, entry_id, raw)
            await client.zadd(keys.order, {entry_id: await client.incr(keys.seq)})

        try:
            yield OutboxUnderTest(RedisOutbox(client, prefix), corrupt_in_redis)
        finally:
            await delete_queue_keys(client, prefix)
            await client.aclose()
    else:
        graph = GraphStoreOutbox()

        async def corrupt_in_graph(entry_id: str, raw: bytes) -> None:
            await graph.graph.record_answer(
                entry_id, "e", announce=always(OutboxMessage(entry_id, DAG_EVENTS, raw))
            )

        yield OutboxUnderTest(graph, corrupt_in_graph)


@pytest.fixture(params=["memory", "redis", "graphstore"])
async def outbox(
    request: pytest.FixtureRequest, endpoints: ServiceEndpoints
) -> AsyncIterator[OutboxUnderTest]:
    async with open_outbox(request.param, endpoints) as under_test:
        yield under_test


@pytest.fixture(params=["memory", "redis"])
async def writable(
    request: pytest.FixtureRequest, endpoints: ServiceEndpoints
) -> AsyncIterator[Outbox]:
    """The outboxes whose `append` is their own write path (validation, atomic batches)."""
    async with open_outbox(request.param, endpoints) as under_test:
        yield under_test.store


def event(name: str, subject: str = "tags/btc/60") -> event_pb2.Event:
    return event_pb2.Event(id=f"id-{name}", type="qmtl.dag.queue_updated", subject=subject)


def published(bus: InMemoryEventBus, topic: str = DAG_EVENTS) -> list[str]:
    return [decode(r.value, r.headers).id for r in bus.records(topic)]


async def pending_ids(store: Outbox, limit: int = DEFAULT_OUTBOX_PAGE) -> list[str]:
    return [entry.id for entry in await store.outbox_pending(limit)]


async def test_pending_returns_what_was_appended_in_append_order(outbox: OutboxUnderTest) -> None:
    a, b, c, d = event("a"), event("b"), event("c", subject="services/x"), event("d")
    store = outbox.store

    assert await store.append(DAG_EVENTS, [b, a]) == 2
    assert await store.append(OPS_EVENTS, [c]) == 1
    assert await store.append(DAG_EVENTS, [d]) == 1

    entries = await store.outbox_pending()
    assert [(e.id, e.topic, e.payload) for e in entries] == [
        (b.id, DAG_EVENTS, b.SerializeToString()),
        (a.id, DAG_EVENTS, a.SerializeToString()),
        (c.id, OPS_EVENTS, c.SerializeToString()),
        (d.id, DAG_EVENTS, d.SerializeToString()),
    ]
    assert await store.outbox_size() == 4


async def test_an_id_already_pending_keeps_its_first_entry(outbox: OutboxUnderTest) -> None:
    store = outbox.store
    first = event("a")
    again = event("a", subject="tags/eth/60")  # same id, other content

    assert await store.append(DAG_EVENTS, [first]) == 1
    assert await store.append(DAG_EVENTS, [again]) == 0
    assert await store.append(DAG_EVENTS, [event("b"), event("b")]) == 1

    entries = await store.outbox_pending()
    assert [e.id for e in entries] == [first.id, "id-b"]
    assert entries[0].payload == first.SerializeToString()
    assert await store.outbox_size() == 2


async def test_pending_takes_the_oldest_up_to_its_limit(outbox: OutboxUnderTest) -> None:
    names = [f"e{i}" for i in range(5)]
    await outbox.store.append(DAG_EVENTS, [event(n) for n in names])

    assert await pending_ids(outbox.store, 2) == ["id-e0", "id-e1"]
    assert await pending_ids(outbox.store, MAX_BATCH) == [f"id-{n}" for n in names]
    assert await outbox.store.outbox_size() == 5  # reading removes nothing


@pytest.mark.parametrize("limit", [0, -1, MAX_BATCH + 1])
async def test_a_limit_out_of_range_is_refused(outbox: OutboxUnderTest, limit: int) -> None:
    with pytest.raises(PortError) as caught:
        await outbox.store.outbox_pending(limit)
    assert (caught.value.code, caught.value.field, caught.value.retryable) == (
        "E_VALIDATION",
        "limit",
        False,
    )


async def test_ack_removes_exactly_the_pending_ids_it_names(outbox: OutboxUnderTest) -> None:
    store = outbox.store
    await store.append(DAG_EVENTS, [event(n) for n in "abcd"])

    assert await store.outbox_ack(["id-b", "id-d", "id-unknown", "id-b"]) == 2
    assert await pending_ids(store) == ["id-a", "id-c"]
    assert await store.outbox_size() == 2
    assert await store.outbox_ack(["id-b"]) == 0  # a second ack is harmless
    assert await store.outbox_ack([]) == 0
    assert await pending_ids(store) == ["id-a", "id-c"]


async def test_an_acked_id_appended_again_is_pending_again(outbox: OutboxUnderTest) -> None:
    # The outbox remembers nothing once an entry is sent: consumers dedupe by Event.id.
    store = outbox.store
    await store.append(DAG_EVENTS, [event("a"), event("b")])
    await store.outbox_ack(["id-a"])

    assert await store.append(DAG_EVENTS, [event("a")]) == 1
    assert await pending_ids(store) == ["id-b", "id-a"]


async def test_ack_refuses_an_empty_id_and_too_many_ids(outbox: OutboxUnderTest) -> None:
    await outbox.store.append(DAG_EVENTS, [event("a")])
    with pytest.raises(PortError) as empty:
        await outbox.store.outbox_ack(["id-a", ""])
    assert (empty.value.code, empty.value.field) == ("E_VALIDATION", "ids[1]")
    with pytest.raises(PortError) as many:
        await outbox.store.outbox_ack(["id-a"] * (MAX_BATCH + 1))
    assert (many.value.code, many.value.field) == ("E_PAYLOAD_TOO_LARGE", "ids")
    assert await pending_ids(outbox.store) == ["id-a"]  # nothing acked


async def test_a_relay_drain_publishes_everything_in_order_and_empties_it(
    outbox: OutboxUnderTest,
) -> None:
    store = outbox.store
    dag = [event(f"d{i}") for i in range(4)]
    ops = event("o", subject="services/x")
    await store.append(DAG_EVENTS, dag[:2])
    await store.append(OPS_EVENTS, [ops])
    await store.append(DAG_EVENTS, dag[2:])
    bus = InMemoryEventBus(partitions=1)
    relay = OutboxRelay(store, bus, page=2)  # three pages

    assert await relay.drain() == 5
    assert published(bus) == [e.id for e in dag]
    assert published(bus, OPS_EVENTS) == [ops.id]
    assert await store.outbox_size() == 0
    assert await relay.drain() == 0
    assert relay.relayed == 5


async def test_a_corrupted_entry_is_dropped_and_does_not_block_the_rest(
    outbox: OutboxUnderTest,
) -> None:
    store = outbox.store
    await store.append(DAG_EVENTS, [event("before")])
    await outbox.corrupt("id-corrupt", b"\xff\xff\xff")
    await store.append(DAG_EVENTS, [event("after")])
    bus = InMemoryEventBus(partitions=1)
    relay = OutboxRelay(store, bus)

    assert await relay.drain() == 2
    assert published(bus) == ["id-before", "id-after"]
    assert relay.dropped == 1
    assert await store.outbox_size() == 0


async def test_a_boot_relays_what_was_left_and_reports_the_count(
    outbox: OutboxUnderTest,
) -> None:
    left = [event("a"), event("b")]
    await outbox.store.append(DAG_EVENTS, left)
    bus = InMemoryEventBus(partitions=1)
    restart = Restart("gateway", "i-1", "test")

    assert await restart.drain(outbox.store, bus) == 2
    restarted = await restart.announce(bus)

    assert restarted.replayed_events == 2
    assert published(bus) == [e.id for e in left]
    [announced] = [decode(r.value, r.headers) for r in bus.records(OPS_EVENTS)]
    assert announced.service_restarted.replayed_events == 2
    assert await outbox.store.outbox_size() == 0


# -- append as a write path of its own (memory, Redis) ---------------------------------------


@pytest.mark.parametrize(
    ("topic", "bad", "field"),
    [
        pytest.param(DAG_EVENTS, event_pb2.Event(type="t", subject="s"), "events[1].id", id="id"),
        pytest.param(DAG_EVENTS, event_pb2.Event(id="x", subject="s"), "events[1].type", id="type"),
        pytest.param(DAG_EVENTS, event_pb2.Event(id="x", type="t"), "events[1].subject", id="subj"),
        pytest.param("", event("x"), "topic", id="empty-topic"),
        pytest.param(DAG_EVENTS + ".dlq", event("x"), "topic", id="dead-letter-topic"),
    ],
)
async def test_an_unpublishable_event_refuses_its_whole_batch(
    writable: Outbox, topic: str, bad: event_pb2.Event, field: str
) -> None:
    with pytest.raises(InvalidEventError) as caught:
        await writable.append(topic, [event("good"), bad])
    assert (caught.value.field, caught.value.code, caught.value.retryable) == (
        field,
        "E_VALIDATION",
        False,
    )
    assert await writable.outbox_size() == 0


async def test_an_event_over_the_payload_limit_is_refused(writable: Outbox) -> None:
    huge = event("huge", subject="s" * MAX_OUTBOX_PAYLOAD_BYTES)
    with pytest.raises(OutboxTooLargeError) as caught:
        await writable.append(DAG_EVENTS, [event("good"), huge])
    assert (caught.value.field, caught.value.code) == ("events[1].payload", "E_PAYLOAD_TOO_LARGE")
    assert await writable.outbox_size() == 0


async def test_a_batch_over_max_batch_is_refused(writable: Outbox) -> None:
    with pytest.raises(OutboxTooLargeError) as caught:
        await writable.append(DAG_EVENTS, [event(str(i)) for i in range(MAX_BATCH + 1)])
    assert caught.value.field == "events"
    assert await writable.outbox_size() == 0


async def test_a_batch_of_max_batch_is_one_append(writable: Outbox) -> None:
    events = [event(f"{i:05d}") for i in range(MAX_BATCH)]
    assert await writable.append(DAG_EVENTS, events) == MAX_BATCH
    assert await writable.append(DAG_EVENTS, []) == 0
    assert await pending_ids(writable, MAX_BATCH) == [e.id for e in events]
    assert await writable.outbox_ack([e.id for e in events]) == MAX_BATCH
    assert await writable.outbox_size() == 0
