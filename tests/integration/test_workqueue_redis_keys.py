"""What the Redis adapter leaves in Redis, as docs/operations/redis.md describes it: one hash
slot per queue, completed jobs that expire after the retention, dead letters and live jobs that
never expire, and idempotency keys that live as long as their window."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from redis.crc import key_slot

from qmtl.common.v1 import error_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.workqueue import QueueSettings, RedisWorkQueue

from .workqueue_support import connect, delete_prefixed, job_of_kind, unique

SETTINGS = QueueSettings(idempotency_window=3600.0, completed_retention=7200.0)
FATAL = error_pb2.ErrorDetail(code="E_TEST_FATAL")


@pytest.fixture
async def queue(endpoints: ServiceEndpoints) -> AsyncIterator[RedisWorkQueue]:
    client = await connect(endpoints.redis_url)
    queue = RedisWorkQueue(client, unique("keys"), SETTINGS)
    yield queue
    await delete_prefixed(client, [queue.prefix])
    await client.aclose()


async def ttl_seconds(client: redis.Redis, key: str) -> float:
    return int(await client.pttl(key)) / 1000


async def test_every_key_of_a_queue_lives_in_one_cluster_hash_slot(queue: RedisWorkQueue) -> None:
    await queue.enqueue_many([(job_of_kind("Effect"), f"k{i}") for i in range(3)])
    lease = await queue.lease("w", 60)
    assert lease is not None
    await queue.fail(lease.job_id, lease.token, FATAL, retryable=False)

    keys = [key async for key in queue.client.scan_iter(match=queue.prefix + "*")]

    assert len(keys) >= 8  # 3 jobs, 3 idempotency keys, ready, dead, seq
    assert len({key_slot(key) for key in keys}) == 1


async def test_a_completed_job_expires_after_the_retention_and_a_dead_one_never(
    queue: RedisWorkQueue,
) -> None:
    entries = [(job_of_kind("Effect"), key) for key in ("done", "dead", "waiting")]
    waiting = (await queue.enqueue_many(entries))[2].job_id
    done, dead = await queue.lease_many("w", 60, 2)
    await queue.complete(done.job_id, done.token, b"")
    await queue.fail(dead.job_id, dead.token, FATAL, retryable=False)

    completed_ttl = await ttl_seconds(queue.client, queue.prefix + "job:" + done.job_id)
    assert SETTINGS.completed_retention - 60 < completed_ttl <= SETTINGS.completed_retention
    assert await queue.client.pttl(queue.prefix + "job:" + dead.job_id) == -1
    assert await queue.client.pttl(queue.prefix + "job:" + waiting) == -1


async def test_an_idempotency_key_lives_as_long_as_its_window(queue: RedisWorkQueue) -> None:
    await queue.enqueue(job_of_kind("Effect"), "order-7")

    remaining = await ttl_seconds(queue.client, queue.prefix + "idem:order-7")

    assert SETTINGS.idempotency_window - 60 < remaining <= SETTINGS.idempotency_window
