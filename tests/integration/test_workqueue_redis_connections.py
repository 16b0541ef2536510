"""More concurrent calls than a client has connections: they wait for one, none fails.

A Gateway under a burst of submissions makes a Redis call per request at once; redis-py's
default pool refused every call past its 100th connection in use ("Too many connections"),
and the submissions were answered 503 although Redis was fine.
"""

from __future__ import annotations

import asyncio

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.workqueue import QueueSettings, RedisWorkQueue
from qmtl.runtime.workqueue.redis_calls import MAX_CONNECTIONS, client_for_url

from .workqueue_support import connect, delete_prefixed, job_of_kind, unique


async def test_a_burst_past_the_pool_size_waits_for_connections_instead_of_failing(
    endpoints: ServiceEndpoints,
) -> None:
    queue = RedisWorkQueue.from_url(endpoints.redis_url, unique("burst"), QueueSettings())
    burst = MAX_CONNECTIONS + 50
    try:
        answers = await asyncio.gather(
            *(queue.enqueue(job_of_kind("Effect"), f"k{i}") for i in range(burst))
        )
        stats = await queue.stats()
    finally:
        cleaner = await connect(endpoints.redis_url)
        await delete_prefixed(cleaner, [queue.prefix])
        await cleaner.aclose()
        await queue.aclose()

    assert len({answer.job_id for answer in answers}) == burst
    assert stats.ready == burst


async def test_each_call_holds_a_connection_only_while_it_runs(
    endpoints: ServiceEndpoints,
) -> None:
    client = client_for_url(endpoints.redis_url, 5.0)
    try:
        # Blocking reads hold their connection for their whole wait: the pool's worst case.
        waits = [
            client.blpop([f"{unique('empty')}:list"], 0.2) for _ in range(MAX_CONNECTIONS + 20)
        ]
        assert await asyncio.gather(*waits) == [None] * (MAX_CONNECTIONS + 20)
    finally:
        await client.aclose()
