"""bench/queue's floor ("scripts only") moves real jobs through the adapter's own Lua scripts,
so the figure it prints is the cost of the queue's guarantees in Redis, not of a shortcut."""

from __future__ import annotations

import uuid

from bench.queue.run import connect, delete_prefix, make_item, scripts_only
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.workqueue import CompleteOutcome, Completion, QueueSettings, RedisWorkQueue


async def test_the_floor_enqueues_leases_and_completes_every_job_it_counts(
    endpoints: ServiceEndpoints,
) -> None:
    client = connect(endpoints.redis_url)
    queue = RedisWorkQueue(client, f"bench-test-{uuid.uuid4().hex[:12]}", QueueSettings())
    try:
        rate = await scripts_only(queue, make_item(64), 5)

        assert rate > 0
        stats = await queue.stats()
        # Six jobs were enqueued (one leased before the clock starts); five were completed
        # and the sixth is still held by the floor's last complete_and_lease.
        assert (stats.ready, stats.leased, stats.delayed, stats.dead) == (0, 1, 0, 0)
        completed = [key async for key in client.scan_iter(match=queue.prefix + "job:*", count=100)]
        assert len(completed) == 6
        states = [await client.hget(key, "ended") for key in completed]
        assert sorted(state or b"" for state in states) == [b""] + [b"complete"] * 5
        # The floor's leases are the adapter's: a lease it holds settles through the adapter.
        leased = [key for key, state in zip(completed, states, strict=True) if state is None]
        job_id = leased[0].decode().rpartition(":")[2]
        token = await client.hget(leased[0], "token")
        assert token is not None
        outcomes = await queue.complete_many([Completion(job_id, token.decode())])
        assert outcomes == [CompleteOutcome.COMPLETED]
    finally:
        await delete_prefix(client, queue.prefix)
        await client.aclose()
