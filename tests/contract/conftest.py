"""The queues under contract: each test runs once per adapter, in-memory and real Redis.

`queue_under_test` injects a manual clock and a fixed jitter draw into both adapters, so time
moves only when a test says so. `live_queue` uses real time (the worker tests run a real
worker loop). Each Redis queue gets its own key prefix and is deleted afterwards; a Redis that
does not answer fails the test, never skips it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import redis.asyncio as redis

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.workqueue import (
    BackoffPolicy,
    InMemoryWorkQueue,
    QueueSettings,
    RedisWorkQueue,
    WorkQueue,
)

ADAPTERS = ["memory", "redis"]

CONTRACT_SETTINGS = QueueSettings(
    idempotency_window=60.0,
    default_max_attempts=3,
    backoff=BackoffPolicy(base=1.0, cap=8.0, jitter=0.5),
    completed_retention=120.0,
)


class ManualClock:
    """Epoch seconds that move only when `advance` is called."""

    def __init__(self) -> None:
        # Real "now" as a start, so Redis TTLs derived from it stay sensible.
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FixedJitter:
    """The jitter draw every retry gets; 0.0 means the full backoff."""

    def __init__(self) -> None:
        self.draw = 0.0

    def __call__(self) -> float:
        return self.draw


@dataclass
class QueueUnderTest:
    queue: WorkQueue
    clock: ManualClock
    jitter: FixedJitter
    corrupt_item: Callable[[str, bytes], Awaitable[None]]
    """Overwrites a job's stored WorkItem bytes, as a buggy producer or a damaged store would."""


async def connect_redis(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        await client.ping()
    except redis.ConnectionError as exc:
        await client.aclose()
        pytest.fail(
            f"Redis is not reachable at {url} ({exc}); start it with "
            "`make services-up` or `scripts/services/redis.sh start`"
        )
    return client


async def delete_queue_keys(client: redis.Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await client.delete(*keys)


@pytest.fixture(params=ADAPTERS)
async def queue_under_test(
    request: pytest.FixtureRequest, endpoints: ServiceEndpoints
) -> AsyncIterator[QueueUnderTest]:
    clock, jitter = ManualClock(), FixedJitter()
    if request.param == "memory":
        memory = InMemoryWorkQueue(CONTRACT_SETTINGS, clock=clock, jitter=jitter)

        async def corrupt_in_memory(job_id: str, raw: bytes) -> None:
            memory._jobs[job_id].item = raw

        yield QueueUnderTest(memory, clock, jitter, corrupt_in_memory)
        return

    client = await connect_redis(endpoints.redis_url)
    queue = RedisWorkQueue(
        client, f"contract-{uuid.uuid4().hex}", CONTRACT_SETTINGS, clock=clock, jitter=jitter
    )

    async def corrupt_in_redis(job_id: str, raw: bytes) -> None:
        await client.hset(queue.prefix + "job:" + job_id, "item", raw)

    try:
        yield QueueUnderTest(queue, clock, jitter, corrupt_in_redis)
    finally:
        await delete_queue_keys(client, queue.prefix)
        await client.aclose()


LIVE_SETTINGS = QueueSettings(
    default_max_attempts=3,
    backoff=BackoffPolicy(base=0.01, cap=0.05, jitter=0.5),
)


@pytest.fixture(params=ADAPTERS)
async def live_queue(
    request: pytest.FixtureRequest, endpoints: ServiceEndpoints
) -> AsyncIterator[WorkQueue]:
    if request.param == "memory":
        yield InMemoryWorkQueue(LIVE_SETTINGS)
        return
    client = await connect_redis(endpoints.redis_url)
    queue = RedisWorkQueue(client, f"contract-live-{uuid.uuid4().hex}", LIVE_SETTINGS)
    try:
        yield queue
    finally:
        await delete_queue_keys(client, queue.prefix)
        await client.aclose()
