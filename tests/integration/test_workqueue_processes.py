"""Several real worker processes on one Redis queue: no job lost, none run or completed twice,
one lessee per job, one job per idempotency key, poison jobs dead-lettered."""

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

EMPTY = QueueStats(ready=0, leased=0, delayed=0, dead=0)


@pytest.fixture
async def harness(endpoints: ServiceEndpoints, tmp_path: Path) -> AsyncIterator[Harness]:
    async with queue_harness(endpoints.redis_url, tmp_path) as h:
        yield h


async def wait_until_ready(h: Harness, processes: list[WorkerProcess]) -> None:
    async def all_up() -> bool:
        return await h.count("ready") == len(processes)

    await eventually(all_up, what=f"{len(processes)} processes to start", watch=processes)


async def release_all_at_once(h: Harness, processes: list[WorkerProcess]) -> list[str]:
    """Starts every waiting process together and returns what each reported."""
    await wait_until_ready(h, processes)
    await h.client.rpush(h.key("go"), *["go"] * len(processes))

    async def all_reported() -> bool:
        return await h.count("results") == len(processes)

    await eventually(all_reported, what="every process to report")
    for process in processes:
        assert await process.exit_code() == 0, process.log_tail()
    return await h.entries("results")


async def test_two_worker_processes_complete_a_thousand_jobs_each_exactly_once(
    harness: Harness,
) -> None:
    h = harness
    workers = [h.spawner.spawn("worker", f"w{i}") for i in range(2)]
    await wait_until_ready(h, workers)
    keys = [f"job-{i:04d}" for i in range(1000)]
    job_ids = []
    for start in range(0, len(keys), 100):
        batch = [(job_of_kind("Effect"), key) for key in keys[start : start + 100]]
        job_ids += [result.job_id for result in await h.queue.enqueue_many(batch)]

    async def all_done() -> bool:
        return await h.queue.stats() == EMPTY and await h.client.hlen(h.key("runs")) == 1000

    await eventually(all_done, what="all 1000 jobs to be worked", within=60, watch=workers)
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert await worker.exit_code() == 0, worker.log_tail()

    assert await h.hash_of_ints("runs") == dict.fromkeys(keys, 1)
    assert await h.hash_of_ints("effects") == dict.fromkeys(keys, 1)
    jobs = [await h.queue.get(job_id) for job_id in job_ids]
    assert all(
        job is not None and job.state == work_state_pb2.WORK_STATE_COMPLETED and job.attempts == 1
        for job in jobs
    )
    completions = [(await h.report(w.name))["completed"] for w in workers]
    assert sum(completions) == 1000, completions
    assert all(count > 0 for count in completions), f"one worker did nothing: {completions}"


async def test_of_five_lessee_processes_racing_for_one_job_one_wins(harness: Harness) -> None:
    h = harness
    job_id = (await h.queue.enqueue(job_of_kind("Effect"), "contested")).job_id
    lessees = [h.spawner.spawn("lease-once", f"lessee-{i}") for i in range(5)]

    results = await release_all_at_once(h, lessees)

    assert sorted(results) == ["-", "-", "-", "-", job_id]
    assert await h.queue.stats() == QueueStats(ready=0, leased=1, delayed=0, dead=0)


async def test_ten_processes_enqueueing_with_one_key_make_one_job(harness: Harness) -> None:
    h = harness
    producers = [
        h.spawner.spawn("enqueue-once", f"producer-{i}", "--key=same-key") for i in range(10)
    ]

    results = [line.split() for line in await release_all_at_once(h, producers)]

    assert len({job_id for job_id, _ in results}) == 1
    assert sorted(created for _, created in results) == ["0"] * 9 + ["1"]
    assert await h.queue.stats() == QueueStats(ready=1, leased=0, delayed=0, dead=0)


async def test_a_poison_job_lands_in_the_dead_letter_after_max_attempts(
    harness: Harness,
) -> None:
    h = harness
    poison = (await h.queue.enqueue(job_of_kind("Poison"), "poison")).job_id
    healthy = (await h.queue.enqueue(job_of_kind("Effect"), "healthy")).job_id
    worker = h.spawner.spawn("worker", "w", "--backoff-base=0.01")

    async def poison_dead() -> bool:
        job = await h.queue.get(poison)
        return job is not None and job.state == work_state_pb2.WORK_STATE_DEAD

    await eventually(poison_dead, what="the poison job to be dead-lettered", watch=[worker])
    worker.signal(signal.SIGTERM)
    assert await worker.exit_code() == 0

    job = await h.queue.get(poison)
    assert job is not None
    assert (job.attempts, job.max_attempts, job.error.code) == (3, 3, "E_TEST_POISON")
    assert (await h.hash_of_ints("runs"))["poison"] == 3
    healthy_job = await h.queue.get(healthy)
    assert healthy_job is not None
    assert healthy_job.state == work_state_pb2.WORK_STATE_COMPLETED
    assert await h.queue.stats() == QueueStats(ready=0, leased=0, delayed=0, dead=1)
