"""The strategy stores under contract and small builders for their inputs.

`store_under_test` runs each test once per adapter: in memory, and on the real Redis at the
`QMTL_*` address with a key prefix of its own (deleted afterwards). Both get a ManualClock, so
time moves only when a test says so, and small event-log caps so trimming is cheap to reach.
A Redis that does not answer fails the test, never skips it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as redis

from qmtl.dag.v1 import strategy_pb2
from qmtl.events.v1 import event_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus.topics import STRATEGY_EVENTS
from qmtl.services.gateway.store import Announcement, MemoryStrategyStore, StrategyStore
from qmtl.services.gateway.store.redis_store import RedisStrategyStore
from tests.contract.graphstore_support import ManualClock

STORE_ADAPTERS = ["memory", "redis"]
# Small caps: the contract checks trimming without writing 10,000 events.
EVENT_LOG_CAP = 8
STRATEGY_EVENT_LOG_CAP = 5

QUEUED = strategy_pb2.STRATEGY_STATE_QUEUED
PROCESSING = strategy_pb2.STRATEGY_STATE_PROCESSING
COMPLETED = strategy_pb2.STRATEGY_STATE_COMPLETED
FAILED = strategy_pb2.STRATEGY_STATE_FAILED
STATE_CHANGED = "qmtl.gateway.strategy_state_changed"
DAG_CHANGED = "qmtl.gateway.dag_changed"


@dataclass
class StoreUnderTest:
    store: StrategyStore
    clock: ManualClock


def store_prefix() -> str:
    return f"test:gwstore:{uuid.uuid4().hex}:"


async def connect_redis(endpoints: ServiceEndpoints) -> redis.Redis:
    client = redis.Redis.from_url(endpoints.redis_url, socket_connect_timeout=3)
    try:
        await client.ping()
    except redis.ConnectionError as exc:
        await client.aclose()
        pytest.fail(
            f"Redis is not reachable at {endpoints.redis_url} ({exc}); start it with "
            "`make services-up` or `scripts/services/redis.sh start`"
        )
    return client


async def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await client.delete(*keys)


@pytest.fixture(params=STORE_ADAPTERS)
async def store_under_test(
    request: pytest.FixtureRequest, endpoints: ServiceEndpoints
) -> AsyncIterator[StoreUnderTest]:
    clock = ManualClock()
    if request.param == "memory":
        memory = MemoryStrategyStore(
            clock=clock,
            event_log_cap=EVENT_LOG_CAP,
            strategy_event_log_cap=STRATEGY_EVENT_LOG_CAP,
        )
        yield StoreUnderTest(memory, clock)
        await memory.aclose()
        return
    client = await connect_redis(endpoints)
    prefix = store_prefix()
    store = RedisStrategyStore(
        client,
        prefix=prefix,
        clock=clock,
        event_log_cap=EVENT_LOG_CAP,
        strategy_event_log_cap=STRATEGY_EVENT_LOG_CAP,
    )
    try:
        yield StoreUnderTest(store, clock)
    finally:
        await store.aclose()
        await delete_prefix(client, prefix)
        await client.aclose()


def make_strategy(
    *, dag_hash: str | None = None, name: str = "s", state: int = QUEUED
) -> strategy_pb2.Strategy:
    """A strategy as the Gateway hands it to `create`: a fresh id, no times."""
    return strategy_pb2.Strategy(
        strategy_id=str(uuid.uuid4()),
        name=name,
        dag_hash=dag_hash if dag_hash is not None else uuid.uuid4().hex,
        state=state,  # type: ignore[arg-type]
    )


def state_changed(
    strategy_id: str, from_state: int, to_state: int, *, at: float = 0.0
) -> Announcement:
    """A StrategyStateChanged on the strategy topic, its id fixed now (as the Gateway does)."""
    event = event_pb2.Event(
        id=str(uuid.uuid4()),
        type=STATE_CHANGED,
        source="qmtl/gateway/test",
        subject=f"strategies/{strategy_id}",
        idempotency_key=f"state:{strategy_id}:{to_state}",
    )
    event.time.seconds = int(at)
    event.strategy_state_changed.strategy_id = strategy_id
    event.strategy_state_changed.from_state = from_state  # type: ignore[assignment]
    event.strategy_state_changed.to_state = to_state  # type: ignore[assignment]
    return STRATEGY_EVENTS, event


def dag_changed(strategy_id: str, *, at: float = 0.0) -> Announcement:
    event = event_pb2.Event(
        id=str(uuid.uuid4()),
        type=DAG_CHANGED,
        source="qmtl/gateway/test",
        subject=f"strategies/{strategy_id}",
        idempotency_key=f"dag:{uuid.uuid4()}",
    )
    event.time.seconds = int(at)
    event.dag_changed.strategy_id = strategy_id
    return STRATEGY_EVENTS, event


def ids(events: list[event_pb2.Event]) -> list[str]:
    return [event.id for event in events]
