"""Jobs in every state survive a Redis restart (AOF on), and a queue object that was open
across the restart carries on: it reconnects and reloads its scripts (EVALSHA -> NOSCRIPT).

Each test runs its own Redis on a free port with its own data directory (scripts/services/
redis.sh with QMTL_REDIS_PORT and QMTL_SERVICES_DIR), so the shared server is never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from qmtl.common.v1 import error_pb2
from qmtl.runtime.workqueue import BackoffPolicy, QueueSettings, QueueStats, RedisWorkQueue
from qmtl.work.v1 import work_state_pb2

from .workqueue_support import PrivateRedis, job_of_kind

# Long enough that nothing expires or comes due while the test runs.
SETTINGS = QueueSettings(backoff=BackoffPolicy(base=600.0, cap=600.0))
LEASE_TTL = 600.0
FAILURE = error_pb2.ErrorDetail(code="E_TEST", message="failed before the restart")


def restart_gracefully(server: PrivateRedis) -> None:
    server.stop()
    server.start()


def restart_after_kill(server: PrivateRedis) -> None:
    server.kill_hard()
    server.start()


@pytest.mark.parametrize(
    ("appendfsync", "restart"),
    [
        pytest.param("everysec", restart_gracefully, id="stop-and-start-everysec"),
        pytest.param("always", restart_after_kill, id="kill-9-and-start-always"),
    ],
)
async def test_jobs_in_every_state_survive_a_restart(
    tmp_path: Path, appendfsync: str, restart: Callable[[PrivateRedis], None]
) -> None:
    server = PrivateRedis(tmp_path, appendfsync=appendfsync)
    server.start()
    queue = RedisWorkQueue.from_url(server.url, "restart", SETTINGS)
    try:
        entries = [(job_of_kind("Effect"), f"job-{i}") for i in range(6)]
        ids = [result.job_id for result in await queue.enqueue_many(entries)]
        done, delayed, dead, held = await queue.lease_many("w1", LEASE_TTL, 4)
        await queue.complete(done.job_id, done.token, b"result")
        await queue.fail(delayed.job_id, delayed.token, FAILURE, retryable=True)
        await queue.fail(dead.job_id, dead.token, FAILURE, retryable=False)
        before = {job_id: await queue.get(job_id) for job_id in ids}
        stats_before = await queue.stats()
        assert stats_before == QueueStats(ready=2, leased=1, delayed=1, dead=1)

        restart(server)

        assert await queue.client.script_exists(queue_script_sha(queue)) == [False]
        assert {job_id: await queue.get(job_id) for job_id in ids} == before
        assert await queue.stats() == stats_before
        assert await queue.complete(held.job_id, held.token, b"after restart") is True
        oldest_ready = await queue.lease("w2", LEASE_TTL)
        assert oldest_ready is not None
        assert oldest_ready.job_id == ids[4]
        duplicate = await queue.enqueue(job_of_kind("Effect"), "job-0")
        assert (duplicate.job_id, duplicate.created) == (ids[0], False)
        assert await queue.client.script_exists(queue_script_sha(queue)) == [True]
        finished = await queue.get(held.job_id)
        assert finished is not None
        assert finished.state == work_state_pb2.WORK_STATE_COMPLETED
    finally:
        await queue.aclose()
        server.stop()


def queue_script_sha(queue: RedisWorkQueue) -> str:
    return queue._scripts.lease.sha
