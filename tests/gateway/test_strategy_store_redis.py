"""What only the Redis strategy store has to prove: several Gateway instances (clients) on one
Redis agree, a record outlives the client that wrote it, a Redis that is down is a typed,
retryable error, and a write's state change and its outbox entry land together."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import cast

import pytest
import redis.asyncio as redis

from qmtl.dag.v1 import node_status_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.services.gateway.store import InvalidStateError, StrategyStoreUnavailableError
from qmtl.services.gateway.store.redis_store import RedisStrategyStore

from .contract.store_support import (
    COMPLETED,
    FAILED,
    PROCESSING,
    QUEUED,
    connect_redis,
    delete_prefix,
    make_strategy,
    state_changed,
    store_prefix,
)

ROUNDS = 20


@pytest.fixture
async def prefix(endpoints: ServiceEndpoints) -> AsyncIterator[str]:
    name = store_prefix()
    yield name
    client = await connect_redis(endpoints)
    await delete_prefix(client, name)
    await client.aclose()


@pytest.fixture
async def two_instances(
    endpoints: ServiceEndpoints, prefix: str
) -> AsyncIterator[tuple[RedisStrategyStore, RedisStrategyStore]]:
    """Two stores on one prefix, each with its own client, as two Gateway processes have."""
    first = RedisStrategyStore(await connect_redis(endpoints), prefix=prefix, owns_client=True)
    second = RedisStrategyStore(await connect_redis(endpoints), prefix=prefix, owns_client=True)
    yield first, second
    await first.aclose()
    await second.aclose()


async def dump(client: redis.Redis, prefix: str) -> dict[bytes, bytes | None]:
    """Every key under the prefix with its serialized value, to compare before and after."""
    keys = sorted([key async for key in client.scan_iter(match=prefix + "*", count=1000)])
    return {key: await client.dump(key) for key in keys}


async def test_concurrent_creates_of_one_dag_create_exactly_one(
    two_instances: tuple[RedisStrategyStore, RedisStrategyStore],
) -> None:
    first, second = two_instances
    for round_ in range(ROUNDS):
        dag_hash = f"dag-{round_}"
        a, b = make_strategy(dag_hash=dag_hash), make_strategy(dag_hash=dag_hash)
        results = await asyncio.gather(
            first.create(
                a,
                idempotency_key="",
                fingerprint="",
                events=[state_changed(a.strategy_id, 0, QUEUED)],
            ),
            second.create(
                b,
                idempotency_key="",
                fingerprint="",
                events=[state_changed(b.strategy_id, 0, QUEUED)],
            ),
        )
        outcomes = sorted(result.outcome for result in results)
        assert outcomes == ["created", "duplicate"], f"round {round_}: {outcomes}"
        winners = {result.strategy.strategy_id for result in results}
        assert len(winners) == 1, f"round {round_}: both answered with {winners}"
    listed, _ = await first.list(limit=1000)
    assert len(listed) == ROUNDS
    assert await first.outbox.outbox_size() == ROUNDS  # one announcement per created strategy


async def test_concurrent_transitions_from_one_state_have_one_winner(
    two_instances: tuple[RedisStrategyStore, RedisStrategyStore],
) -> None:
    first, second = two_instances
    for round_ in range(ROUNDS):
        strategy = make_strategy()
        sid = strategy.strategy_id
        await first.create(strategy, idempotency_key="", fingerprint="", events=[])
        results = await asyncio.gather(
            first.transition(
                sid, expect=[QUEUED], to=PROCESSING, events=[state_changed(sid, QUEUED, PROCESSING)]
            ),
            second.transition(
                sid, expect=[QUEUED], to=FAILED, events=[state_changed(sid, QUEUED, FAILED)]
            ),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, BaseException)]
        assert (len(won), len(lost)) == (1, 1), f"round {round_}: {results}"
        assert isinstance(lost[0], InvalidStateError)
        assert lost[0].current == won[0].state
        stored = await second.get(sid)
        assert stored is not None
        assert stored.state == won[0].state
        events, _ = await first.events(strategy_id=sid, limit=10)
        assert [e.strategy_state_changed.to_state for e in events] == [won[0].state]


async def test_a_fresh_instance_reads_what_another_wrote(
    endpoints: ServiceEndpoints, prefix: str
) -> None:
    writer = RedisStrategyStore(await connect_redis(endpoints), prefix=prefix, owns_client=True)
    strategy = make_strategy()
    sid = strategy.strategy_id
    created = await writer.create(
        strategy,
        idempotency_key="k",
        fingerprint="f",
        events=[state_changed(sid, 0, QUEUED)],
    )
    await writer.transition(sid, expect=[QUEUED], to=PROCESSING)
    await writer.report_node_states(
        sid, [node_status_pb2.NodeState(node_id="n1", status=node_status_pb2.NODE_STATUS_RUNNING)]
    )
    await writer.aclose()

    reader = RedisStrategyStore.from_url(endpoints.redis_url, prefix=prefix)
    try:
        stored = await reader.get(sid)
        assert stored is not None
        assert stored.state == PROCESSING
        assert stored.created_at == created.strategy.created_at
        listed, _ = await reader.list(state=PROCESSING, limit=10)
        assert [s.strategy_id for s in listed] == [sid]
        assert [n.node_id for n in await reader.node_states(sid)] == ["n1"]
        events, _ = await reader.events(limit=10)
        assert [e.strategy_state_changed.strategy_id for e in events] == [sid]
        assert len(await reader.outbox.outbox_pending(10)) == 1
        replay = await reader.create(
            make_strategy(), idempotency_key="k", fingerprint="f", events=[]
        )
        assert replay.outcome == "replayed"
        assert replay.strategy.strategy_id == sid
    finally:
        await reader.aclose()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_redis_that_is_down_is_a_retryable_unavailable_error() -> None:
    store = RedisStrategyStore.from_url(f"redis://127.0.0.1:{closed_port()}/0", call_timeout=3)
    try:
        calls = [
            store.ping(),
            store.get("some-id"),
            store.create(make_strategy(), idempotency_key="", fingerprint="", events=[]),
        ]
        for call in calls:
            with pytest.raises(StrategyStoreUnavailableError) as caught:
                await call
            assert caught.value.retryable
            assert caught.value.code == "E_UNAVAILABLE"
            assert caught.value.to_qmtl_error().http_status == 503
    finally:
        await store.aclose()


async def test_a_transition_writes_state_outbox_and_log_together(
    endpoints: ServiceEndpoints, prefix: str
) -> None:
    client = await connect_redis(endpoints)
    store = RedisStrategyStore(client, prefix=prefix)
    try:
        strategy = make_strategy()
        sid = strategy.strategy_id
        await store.create(strategy, idempotency_key="", fingerprint="", events=[])
        topic, moved = state_changed(sid, QUEUED, PROCESSING)

        await store.transition(sid, expect=[QUEUED], to=PROCESSING, events=[(topic, moved)])

        assert await client.hget(f"{prefix}strategy:{sid}", "state") == b"2"
        assert await client.zscore(f"{prefix}list:state:{QUEUED}", sid) is None
        assert await client.zscore(f"{prefix}list:state:{PROCESSING}", sid) is not None
        keys = store.outbox.keys
        assert await client.zrange(keys.order, 0, -1) == [moved.id.encode()]
        entry = cast(bytes | None, await client.hget(keys.entries, moved.id))
        assert entry is not None
        assert entry.endswith(moved.SerializeToString())
        log = await client.zrange(f"{prefix}events:log", 0, -1)
        assert [member[16:] for member in log] == [moved.SerializeToString()]
        assert await client.zrange(f"{prefix}events:strategy:{sid}", 0, -1) == log

        # A transition the compare-and-set refuses leaves every key exactly as it was.
        before = await dump(client, prefix)
        with pytest.raises(InvalidStateError):
            await store.transition(
                sid,
                expect=[QUEUED],
                to=COMPLETED,
                events=[state_changed(sid, QUEUED, COMPLETED)],
            )
        assert await dump(client, prefix) == before
    finally:
        await store.aclose()
        await client.aclose()


async def test_a_client_decoding_responses_is_refused(endpoints: ServiceEndpoints) -> None:
    client = redis.Redis.from_url(endpoints.redis_url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses=False"):
            RedisStrategyStore(client)
    finally:
        await client.aclose()
