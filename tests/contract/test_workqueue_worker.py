"""run_worker over each adapter, in real time: results, failures, and the two-step shutdown.

Each test runs the worker as a task with its own Shutdown (signals are covered by the
process-level tests in tests/integration) and waits for observable queue states, never for
a fixed time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest

from qmtl.common.v1 import error_pb2
from qmtl.runtime.workqueue import (
    Handler,
    JobFailedError,
    Lease,
    QueueStats,
    Shutdown,
    WorkerReport,
    WorkerSettings,
    WorkQueue,
    run_worker,
)
from qmtl.work.v1 import work_item_pb2, work_state_pb2, work_type_pb2
from tests.polling import eventually

from .support import make_item

READY = work_state_pb2.WORK_STATE_READY
LEASED = work_state_pb2.WORK_STATE_LEASED
COMPLETED = work_state_pb2.WORK_STATE_COMPLETED
DEAD = work_state_pb2.WORK_STATE_DEAD

FAST = WorkerSettings(lease_ttl=5.0, poll_interval=0.01, reap_interval=0.05)
STOP_TIMEOUT = 10.0


class RunningWorker:
    def __init__(self, task: asyncio.Task[WorkerReport], shutdown: Shutdown) -> None:
        self.task = task
        self.shutdown = shutdown

    async def stop(self) -> WorkerReport:
        self.shutdown.request()
        return await asyncio.wait_for(self.task, STOP_TIMEOUT)


@pytest.fixture
async def start_worker(
    live_queue: WorkQueue,
) -> AsyncIterator[Callable[..., RunningWorker]]:
    started: list[RunningWorker] = []

    def start(
        handler: Handler, settings: WorkerSettings = FAST, queue: WorkQueue | None = None
    ) -> RunningWorker:
        shutdown = Shutdown()
        task = asyncio.create_task(
            run_worker(
                queue or live_queue,
                handler,
                worker_id=f"test-worker-{len(started)}",
                settings=settings,
                shutdown=shutdown,
                handle_signals=False,
            )
        )
        worker = RunningWorker(task, shutdown)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if not worker.task.done():
            worker.shutdown.request()
            worker.shutdown.request()
            await asyncio.wait_for(worker.task, STOP_TIMEOUT)


class Endless:
    """A handler that never returns on its own; says when it started and when it was stopped."""

    def __init__(self) -> None:
        self.entered, self.cancelled = asyncio.Event(), asyncio.Event()

    async def __call__(self, item: work_item_pb2.WorkItem) -> bytes:
        self.entered.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled.set()
        return b"from the worker"


async def run_endless_job(
    queue: WorkQueue, start_worker: Callable[..., RunningWorker], *worker_args: object
) -> tuple[Endless, str, RunningWorker]:
    """One job in `queue`, a worker running it in an Endless handler, once the handler started."""
    endless = Endless()
    job_id = (await queue.enqueue(make_item(), "k")).job_id
    worker = start_worker(endless, *worker_args)
    await asyncio.wait_for(endless.entered.wait(), STOP_TIMEOUT)
    return endless, job_id, worker


async def state_of(queue: WorkQueue, job_id: str) -> work_item_pb2.WorkItem:
    job = await queue.get(job_id)
    assert job is not None, f"job {job_id} vanished"
    return job


async def wait_for_state(
    queue: WorkQueue, job_id: str, state: work_state_pb2.WorkState.ValueType
) -> work_item_pb2.WorkItem:
    async def reached() -> bool:
        return (await state_of(queue, job_id)).state == state

    await eventually(reached, what=f"job {job_id} to reach {work_state_pb2.WorkState.Name(state)}")
    return await state_of(queue, job_id)


async def test_the_worker_completes_each_job_with_its_handlers_result(
    live_queue: WorkQueue, start_worker: Callable[..., RunningWorker]
) -> None:
    async def echo(item: work_item_pb2.WorkItem) -> bytes:
        return b"done:" + item.payload

    entries = [(make_item(f"p{i}".encode()), f"k{i}") for i in range(5)]
    ids = [result.job_id for result in await live_queue.enqueue_many(entries)]
    worker = start_worker(echo)

    jobs = [await wait_for_state(live_queue, job_id, COMPLETED) for job_id in ids]
    report = await worker.stop()

    assert [job.result for job in jobs] == [f"done:p{i}".encode() for i in range(5)]
    assert all(job.attempts == 1 for job in jobs)
    assert report.completed == 5
    assert await live_queue.stats() == QueueStats(ready=0, leased=0, delayed=0, dead=0)


async def test_a_handler_raising_a_non_retryable_failure_dead_letters_its_job(
    live_queue: WorkQueue, start_worker: Callable[..., RunningWorker]
) -> None:
    async def refuse(item: work_item_pb2.WorkItem) -> bytes:
        raise JobFailedError("strategy is invalid", code="E_DAG_INVALID", retryable=False)

    job_id = (await live_queue.enqueue(make_item(), "k")).job_id
    worker = start_worker(refuse)

    job = await wait_for_state(live_queue, job_id, DEAD)
    report = await worker.stop()

    assert (job.attempts, job.error.code, job.error.message) == (
        1,
        "E_DAG_INVALID",
        "strategy is invalid",
    )
    assert report.dead_lettered == 1


async def test_a_crashing_handler_is_retried_until_its_attempts_run_out(
    live_queue: WorkQueue, start_worker: Callable[..., RunningWorker]
) -> None:
    calls = 0

    async def crash(item: work_item_pb2.WorkItem) -> bytes:
        nonlocal calls
        calls += 1
        raise RuntimeError("downstream said no")

    job_id = (await live_queue.enqueue(make_item(), "k")).job_id
    worker = start_worker(crash)

    job = await wait_for_state(live_queue, job_id, DEAD)
    report = await worker.stop()

    assert calls == job.attempts == 3
    assert job.error.code == "E_INTERNAL"
    assert "RuntimeError: downstream said no" in job.error.message
    assert (report.retried, report.dead_lettered) == (2, 1)


async def test_an_undecodable_payload_is_dead_lettered_without_a_retry(
    live_queue: WorkQueue, start_worker: Callable[..., RunningWorker]
) -> None:
    async def decode(item: work_item_pb2.WorkItem) -> bytes:
        error_pb2.ErrorDetail.FromString(item.payload)
        return b""

    job_id = (await live_queue.enqueue(make_item(b"\x0a\x05ab"), "k")).job_id
    worker = start_worker(decode)

    job = await wait_for_state(live_queue, job_id, DEAD)
    await worker.stop()

    assert (job.attempts, job.error.code) == (1, "E_UNDECODABLE_PAYLOAD")
    assert not worker.task.exception()


async def test_a_job_of_unknown_type_is_dead_lettered_without_running_a_handler(
    live_queue: WorkQueue, start_worker: Callable[..., RunningWorker]
) -> None:
    ran = False

    async def handler(item: work_item_pb2.WorkItem) -> bytes:
        nonlocal ran
        ran = True
        return b""

    untyped = make_item(type=work_type_pb2.WORK_TYPE_UNSPECIFIED)
    job_id = (await live_queue.enqueue(untyped, "k")).job_id
    worker = start_worker(handler)

    job = await wait_for_state(live_queue, job_id, DEAD)
    await worker.stop()

    assert job.error.code == "E_UNKNOWN_WORK_TYPE"
    assert ran is False


async def test_a_first_stop_request_lets_the_running_job_finish(
    live_queue: WorkQueue, start_worker: Callable[..., RunningWorker]
) -> None:
    entered, finish = asyncio.Event(), asyncio.Event()

    async def slow(item: work_item_pb2.WorkItem) -> bytes:
        entered.set()
        await finish.wait()
        return b"finished"

    running = (await live_queue.enqueue(make_item(), "running")).job_id
    waiting = (await live_queue.enqueue(make_item(), "waiting")).job_id
    worker = start_worker(slow)
    await asyncio.wait_for(entered.wait(), STOP_TIMEOUT)

    worker.shutdown.request()
    finish.set()
    report = await asyncio.wait_for(worker.task, STOP_TIMEOUT)

    job = await state_of(live_queue, running)
    assert (job.state, job.result) == (COMPLETED, b"finished")
    assert (await state_of(live_queue, waiting)).state == READY
    assert report.completed == 1


async def test_a_second_stop_request_gives_the_lease_back_at_once(
    live_queue: WorkQueue, start_worker: Callable[..., RunningWorker]
) -> None:
    endless, job_id, worker = await run_endless_job(live_queue, start_worker)

    worker.shutdown.request()
    worker.shutdown.request()
    report = await asyncio.wait_for(worker.task, STOP_TIMEOUT)

    assert endless.cancelled.is_set()
    job = await state_of(live_queue, job_id)
    assert (job.state, job.attempts) == (READY, 0)
    assert report.released == 1
    assert await live_queue.lease("next-worker", 5.0) is not None


async def test_a_long_job_keeps_its_lease_alive_past_the_original_ttl(
    live_queue: WorkQueue, start_worker: Callable[..., RunningWorker]
) -> None:
    entered, finish = asyncio.Event(), asyncio.Event()

    async def long_job(item: work_item_pb2.WorkItem) -> bytes:
        entered.set()
        await finish.wait()
        return b"long"

    job_id = (await live_queue.enqueue(make_item(), "k")).job_id
    worker = start_worker(long_job, WorkerSettings(lease_ttl=0.3, poll_interval=0.01))
    await asyncio.wait_for(entered.wait(), STOP_TIMEOUT)
    first_deadline = (await state_of(live_queue, job_id)).lease_deadline.ToMilliseconds() / 1000

    async def past_the_first_deadline_and_extended() -> bool:
        job = await state_of(live_queue, job_id)
        return time.time() > first_deadline + 0.05 and (
            job.lease_deadline.ToMilliseconds() / 1000 > time.time()
        )

    await eventually(past_the_first_deadline_and_extended, what="the lease to be extended")
    reaped = await live_queue.reap_expired()
    finish.set()
    job = await wait_for_state(live_queue, job_id, COMPLETED)
    await worker.stop()

    assert reaped.total == 0
    assert (job.attempts, job.result) == (1, b"long")


class LeaseSpy:
    """The queue the worker uses, recording the token of each lease it is handed (the test
    then settles a job behind the worker's back, as another party holding the token could)."""

    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue
        self.tokens: dict[str, str] = {}

    def __getattr__(self, name: str) -> object:
        return getattr(self.queue, name)

    async def lease(self, worker_id: str, lease_ttl: float) -> Lease | None:
        lease = await self.queue.lease(worker_id, lease_ttl)
        if lease is not None:
            self.tokens[lease.job_id] = lease.token
        return lease


async def test_a_handler_whose_lease_is_lost_is_stopped_and_its_job_left_alone(
    live_queue: WorkQueue, start_worker: Callable[..., RunningWorker]
) -> None:
    spy = LeaseSpy(live_queue)
    settings = WorkerSettings(lease_ttl=0.6, poll_interval=0.01, reap_interval=0.05)
    endless, job_id, worker = await run_endless_job(
        live_queue, start_worker, settings, cast(WorkQueue, spy)
    )

    await live_queue.complete(job_id, spy.tokens[job_id], b"from elsewhere")
    await asyncio.wait_for(endless.cancelled.wait(), STOP_TIMEOUT)  # at the next heartbeat
    report = await worker.stop()

    job = await state_of(live_queue, job_id)
    assert (job.state, job.result) == (COMPLETED, b"from elsewhere")
    assert (report.leases_lost, report.completed) == (1, 0)


@pytest.mark.parametrize("raised", [TimeoutError, asyncio.CancelledError])
async def test_a_handler_raising_timeout_or_cancelled_of_its_own_is_a_retried_failure(
    live_queue: WorkQueue, start_worker: Callable[..., RunningWorker], raised: type[BaseException]
) -> None:
    calls = 0

    async def flaky(item: work_item_pb2.WorkItem) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise raised("upstream gave up")
        return b"second time"

    job_id = (await live_queue.enqueue(make_item(), "k")).job_id
    worker = start_worker(flaky)

    job = await wait_for_state(live_queue, job_id, COMPLETED)
    report = await worker.stop()

    assert (job.attempts, job.result) == (2, b"second time")
    assert (report.retried, report.completed) == (1, 1)


async def test_cancelling_the_worker_cancels_its_running_handler(
    live_queue: WorkQueue, start_worker: Callable[..., RunningWorker]
) -> None:
    endless, job_id, worker = await run_endless_job(live_queue, start_worker)

    worker.task.cancel()
    await asyncio.wait({worker.task}, timeout=STOP_TIMEOUT)

    assert worker.task.cancelled()

    assert endless.cancelled.is_set()
    assert (await state_of(live_queue, job_id)).state == LEASED  # until its lease expires
