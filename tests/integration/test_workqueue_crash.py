"""A worker process killed with SIGKILL between lease and complete loses nothing: once its
lease expires another worker runs the job again, and the job's side effect, keyed by its
idempotency key, is applied exactly once."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.work.v1 import work_state_pb2
from tests.polling import eventually

from .workqueue_support import Harness, job_of_kind, queue_harness


@pytest.fixture
async def harness(endpoints: ServiceEndpoints, tmp_path: Path) -> AsyncIterator[Harness]:
    async with queue_harness(endpoints.redis_url, tmp_path) as h:
        yield h


async def test_a_job_whose_worker_is_killed_mid_job_runs_again_and_applies_its_effect_once(
    harness: Harness,
) -> None:
    h = harness
    job_id = (await h.queue.enqueue(job_of_kind("CrashOnce"), "order-42")).job_id
    doomed = h.spawner.spawn("worker", "doomed", "--lease-ttl=1.0")

    async def doomed_started() -> bool:
        return await h.count("started") == 1

    await eventually(doomed_started, what="the first worker to start the job", watch=[doomed])
    assert await h.entries("started") == [f"order-42 {doomed.proc.pid}"]
    mid_job = await h.queue.get(job_id)
    assert mid_job is not None
    assert (mid_job.state, mid_job.lease_owner) == (work_state_pb2.WORK_STATE_LEASED, "doomed")
    assert await h.hash_of_ints("effects") == {"order-42": 1}

    doomed.signal(signal.SIGKILL)
    assert await doomed.exit_code() == -signal.SIGKILL
    survivor = h.spawner.spawn("worker", "survivor", "--lease-ttl=1.0")

    async def completed() -> bool:
        job = await h.queue.get(job_id)
        return job is not None and job.state == work_state_pb2.WORK_STATE_COMPLETED

    await eventually(completed, what="the job to complete on the survivor", watch=[survivor])
    survivor.signal(signal.SIGTERM)
    assert await survivor.exit_code() == 0

    job = await h.queue.get(job_id)
    assert job is not None
    assert (job.attempts, job.result) == (2, b"done order-42")
    assert job.error.code == "E_LEASE_EXPIRED"
    assert await h.hash_of_ints("runs") == {"order-42": 2}
    assert await h.hash_of_ints("effects") == {"order-42": 1}
    report = await h.report("survivor")
    assert (report["completed"], report["reclaimed"]) == (1, 1)
