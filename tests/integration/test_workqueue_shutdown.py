"""SIGTERM on a real worker process: the first lets the job in hand finish, the second gives
its lease back at once."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.workqueue import QueueStats
from qmtl.work.v1 import work_state_pb2
from tests.polling import eventually

from .workqueue_support import Harness, WorkerProcess, job_of_kind, queue_harness


@pytest.fixture
async def harness(endpoints: ServiceEndpoints, tmp_path: Path) -> AsyncIterator[Harness]:
    async with queue_harness(endpoints.redis_url, tmp_path) as h:
        yield h


async def wait_for_handler_start(h: Harness, worker: WorkerProcess) -> None:
    async def started() -> bool:
        return await h.count("started") == 1

    await eventually(started, what="the handler to start", watch=[worker])


async def test_a_first_sigterm_lets_the_job_in_hand_finish_before_the_worker_exits(
    harness: Harness,
) -> None:
    h = harness
    gated = (await h.queue.enqueue(job_of_kind("Gate"), "gated")).job_id
    queued = (await h.queue.enqueue(job_of_kind("Effect"), "queued")).job_id
    worker = h.spawner.spawn("worker", "w")
    await wait_for_handler_start(h, worker)

    worker.signal(signal.SIGTERM)
    await h.client.rpush(h.key("gate:gated"), "open")

    assert await worker.exit_code() == 0, worker.log_tail()
    job = await h.queue.get(gated)
    assert job is not None
    assert (job.state, job.result) == (work_state_pb2.WORK_STATE_COMPLETED, b"done gated")
    untouched = await h.queue.get(queued)
    assert untouched is not None
    assert (untouched.state, untouched.attempts) == (work_state_pb2.WORK_STATE_READY, 0)
    report = await h.report("w")
    assert (report["completed"], report["released"]) == (1, 0)


async def test_a_second_sigterm_gives_the_lease_back_at_once(harness: Harness) -> None:
    h = harness
    stuck = (await h.queue.enqueue(job_of_kind("Hang"), "stuck")).job_id
    # A lease far longer than the test: only a release can make the job ready again.
    worker = h.spawner.spawn("worker", "w", "--lease-ttl=600")
    await wait_for_handler_start(h, worker)

    worker.signal(signal.SIGTERM)

    async def draining() -> bool:
        return "stop requested" in worker.log.read_text(errors="replace")

    await eventually(draining, what="the worker to log the first stop request", watch=[worker])
    worker.signal(signal.SIGTERM)

    assert await worker.exit_code() == 0, worker.log_tail()
    job = await h.queue.get(stuck)
    assert job is not None
    assert (job.state, job.attempts, job.lease_owner) == (work_state_pb2.WORK_STATE_READY, 0, "")
    assert await h.queue.stats() == QueueStats(ready=1, leased=0, delayed=0, dead=0)
    report = await h.report("w")
    assert report["released"] == 1
