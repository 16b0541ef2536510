"""run_worker: lease a job, run its handler, settle it; repeat until told to stop.

Shutdown is two-step, driven by SIGTERM (or SIGINT) or by calling `Shutdown.request()`:
the first request stops leasing and lets the job in hand finish and complete; a second one
cancels that job's handler and releases its lease at once, so another worker picks it up
without waiting for the lease to expire.

While a handler runs, its lease is extended every third of the lease TTL, so a long job is
not reclaimed from a live worker; a worker that dies stops extending and its lease expires.
An extension that finds the lease gone (reaped, settled by someone else) stops the handler.

While the queue's store is unavailable (every Redis call is bounded by
`QueueSettings.call_timeout`), leasing, settling and reaping back off exponentially up to
`WorkerSettings.max_backoff` / `reap_max_backoff`, log each failure, and resume on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from qmtl.common.v1 import error_pb2
from qmtl.runtime import metrics
from qmtl.work.v1 import work_item_pb2, work_state_pb2, work_type_pb2

from .errors import (
    HANDLER_CRASHED,
    UNDECODABLE_PAYLOAD,
    UNKNOWN_WORK_TYPE,
    JobNotFoundError,
    LeaseLostError,
    WorkQueueError,
)
from .job_record import DEAD
from .model import CompleteOutcome, Lease
from .port import WorkQueue
from .reaper import DEFAULT_REAP_MAX_BACKOFF, run_reaper

log = logging.getLogger(__name__)

# WORK_TYPE_UNSPECIFIED and numbers from a newer schema have no handler here.
_HANDLED_WORK_TYPES = frozenset(work_type_pb2.WorkType.values()) - {
    work_type_pb2.WORK_TYPE_UNSPECIFIED
}

Handler = Callable[[work_item_pb2.WorkItem], Coroutine[Any, Any, bytes]]
"""Runs one job and returns its serialized result. It may run more than once for the same
job (after a crash or an expired lease), so its side effects must be idempotent; the job's
`idempotency_key` is the natural key for that.

It is awaited inline in the worker's own task (no task per job: three fewer trips through
the event loop per job), so `asyncio.current_task()` is the worker's and a context variable it
sets without resetting stays set for the next job. Stopping it (second stop request, lost
lease) cancels its await; a `TimeoutError` or `CancelledError` it raises of its own accord is
a failure like any other."""


class Shutdown:
    """The two-step stop: `draining` after the first request, `aborting` after the second."""

    def __init__(self) -> None:
        self.draining = asyncio.Event()
        self.aborting = asyncio.Event()

    def request(self) -> None:
        if self.draining.is_set():
            log.warning("second stop request: releasing the current lease and exiting")
            self.aborting.set()
        else:
            log.warning("stop requested: finishing the current job, then exiting")
        self.draining.set()


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    lease_ttl: float = 30.0
    poll_interval: float = 0.2
    """Wait between lease attempts while the queue is empty."""
    reap_interval: float = 5.0
    max_backoff: float = 5.0
    """Longest wait between lease or settle retries while the queue's store is unavailable
    (the waits double from poll_interval)."""
    reap_max_backoff: float = DEFAULT_REAP_MAX_BACKOFF
    """Longest wait between reaper rounds while the store is unavailable (the waits double
    from reap_interval)."""

    @property
    def heartbeat(self) -> float:
        return self.lease_ttl / 3


@dataclass(slots=True)
class WorkerReport:
    completed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    released: int = 0
    leases_lost: int = 0
    reclaimed: int = 0
    """Expired leases (of any worker) this worker's reaper gave back."""
    errors: list[str] = field(default_factory=list)


def _error_for(exc: BaseException) -> tuple[error_pb2.ErrorDetail, bool]:
    """How a handler's exception is recorded on the job, and whether to retry it."""
    if isinstance(exc, WorkQueueError):
        return exc.to_error_detail(), exc.retryable
    if isinstance(exc, DecodeError):
        # The same bytes will never decode; retrying only delays the dead letter.
        message = f"the job's payload could not be decoded: {exc}"
        return error_pb2.ErrorDetail(code=UNDECODABLE_PAYLOAD, message=message), False
    message = f"handler raised {type(exc).__name__}: {exc}"
    return error_pb2.ErrorDetail(code=HANDLER_CRASHED, message=message, retryable=True), True


class _Stop(enum.Enum):
    """Why a running handler was stopped before it returned."""

    ABORT = "abort"
    """A second stop request: the lease is given back at once."""
    LEASE_LOST = "lease lost"
    """An extension found the lease gone: the job is someone else's now."""


class _HandlerRun:
    """One handler call in progress, run inline in the worker's task.

    The handler is awaited directly, not as a task of its own: a job then costs no extra
    trips through the event loop. `scope` is its cancel scope while it runs (None after):
    stopping it cancels the await and ends the scope.
    """

    __slots__ = ("beat", "extending", "lease", "scope", "stopped")

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.scope: asyncio.Timeout | None = None
        self.stopped: _Stop | None = None
        self.beat: asyncio.TimerHandle | None = None
        self.extending: asyncio.Task[None] | None = None

    def stop(self, reason: _Stop) -> None:
        if self.scope is not None and self.stopped is None:
            self.stopped = reason
            self.scope.reschedule(-1.0)  # in the past: cancel the handler's await now


class _Worker:
    def __init__(
        self,
        queue: WorkQueue,
        handler: Handler,
        worker_id: str,
        settings: WorkerSettings,
        shutdown: Shutdown,
    ) -> None:
        self.queue = queue
        self.handler = handler
        self.worker_id = worker_id
        self.settings = settings
        self.shutdown = shutdown
        self.report = WorkerReport()
        self._running: _HandlerRun | None = None
        self._extensions: set[asyncio.Task[None]] = set()

    async def run(self) -> WorkerReport:
        reaper = asyncio.create_task(
            run_reaper(
                self.queue,
                interval=self.settings.reap_interval,
                stop=self.shutdown.draining,
                max_backoff=self.settings.reap_max_backoff,
            )
        )
        # One waiter for the whole run rather than one per job: a second stop request stops
        # whichever handler is running then.
        aborted = asyncio.create_task(self.shutdown.aborting.wait())
        aborted.add_done_callback(self._abort_running)
        try:
            await self._loop()
        finally:
            aborted.remove_done_callback(self._abort_running)
            aborted.cancel()
            for extension in list(self._extensions):
                await _cancel(extension)
            self.shutdown.draining.set()
            self.report.reclaimed = await reaper
        return self.report

    async def _loop(self) -> None:
        lease: Lease | None = None
        while not self.shutdown.draining.is_set():
            # A busy worker settles its job and takes the next in one call (_process).
            lease = await self._lease() if lease is None else await self._process(lease)
        if lease is not None:
            # Stop was requested while this lease was being taken: do not start new work.
            await self._release(lease)

    async def _lease(self) -> Lease | None:
        """The next job, or None after waiting out an empty queue or a failing store."""
        backoff = self.settings.poll_interval
        failing = False
        while not self.shutdown.draining.is_set():
            try:
                lease = await self.queue.lease(self.worker_id, self.settings.lease_ttl)
            except WorkQueueError as exc:
                if not exc.retryable:
                    raise
                log.warning("lease failed (%s); retrying in %.2fs", exc, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, self.settings.max_backoff)
                failing = True
                continue
            if failing:
                log.warning("leasing works again; the queue's store is back")
            if lease is None:
                await self._pause(self.settings.poll_interval)
            return lease
        return None

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.shutdown.draining.wait(), timeout=seconds)

    async def _process(self, lease: Lease) -> Lease | None:
        """Runs the job, settles it and answers the next lease (None when there is none,
        when stopping, or when the job was given up)."""
        item = lease.item
        if item.type not in _HANDLED_WORK_TYPES:
            error = error_pb2.ErrorDetail(
                code=UNKNOWN_WORK_TYPE, message=f"no handler for work type {item.type}"
            )
            return await self._fail_and_lease(lease, error, retryable=False)
        if self.shutdown.aborting.is_set():
            await self._release(lease)
            return None
        run = _HandlerRun(lease)
        result = b""
        failure: BaseException | None = None
        self._running = run
        run.beat = asyncio.get_running_loop().call_later(self.settings.heartbeat, self._beat, run)
        try:
            async with asyncio.timeout(None) as scope:
                run.scope = scope
                result = await self.handler(item)
        except asyncio.CancelledError as exc:
            if _being_cancelled():
                raise  # our own caller cancels the worker: the handler goes with it
            failure = exc  # the handler raised CancelledError of its own accord
        except Exception as exc:
            failure = exc
        finally:
            run.scope = None
            self._running = None
            run.beat.cancel()
        if run.stopped is _Stop.ABORT:
            await self._release(lease)
            return None
        if run.stopped is _Stop.LEASE_LOST:
            return None
        if failure is None:
            return await self._complete_and_lease(lease, result)
        error, retryable = _error_for(failure)
        return await self._fail_and_lease(lease, error, retryable)

    def _beat(self, run: _HandlerRun) -> None:
        """Every heartbeat while the handler runs: extend its lease (at most one call at once)."""
        if run.scope is None:
            return
        if run.extending is None or run.extending.done():
            run.extending = asyncio.create_task(self._extend(run))
            self._extensions.add(run.extending)
            run.extending.add_done_callback(self._extensions.discard)
        loop = asyncio.get_running_loop()
        run.beat = loop.call_later(self.settings.heartbeat, self._beat, run)

    def _abort_running(self, _: object) -> None:
        if self._running is not None:
            self._running.stop(_Stop.ABORT)

    async def _extend(self, run: _HandlerRun) -> None:
        """Keeps the lease alive; once it is lost, stops the handler (its work would be lost)."""
        lease = run.lease
        try:
            await self.queue.extend(lease.job_id, lease.token, self.settings.lease_ttl)
        except LeaseLostError:
            if run.scope is None:
                return  # the handler finished meanwhile: settling tells the lease's fate
            log.warning("lost the lease on job %s; abandoning its handler", lease.job_id)
            self.report.leases_lost += 1
            run.stop(_Stop.LEASE_LOST)
        except WorkQueueError as exc:
            # The lease may still be alive; try again at the next heartbeat.
            log.warning("could not extend the lease on job %s: %s", lease.job_id, exc)

    async def _complete_and_lease(self, lease: Lease, result: bytes) -> Lease | None:
        if self.shutdown.draining.is_set():
            await self._settle(lambda: self._complete(lease, result))
            return None
        try:
            answer = await self.queue.complete_and_lease(
                lease.job_id, lease.token, result, self.worker_id, self.settings.lease_ttl
            )
        except WorkQueueError as exc:
            # Settling is idempotent: finish this job the plain way (with its retries) and
            # lease the next one separately.
            log.warning("complete_and_lease failed (%s); settling on its own", exc)
            await self._settle(lambda: self._complete(lease, result))
            return None
        self._count_settled(lease, answer.outcome)
        return answer.next_lease

    async def _fail_and_lease(
        self, lease: Lease, error: error_pb2.ErrorDetail, retryable: bool
    ) -> Lease | None:
        if self.shutdown.draining.is_set():
            await self._settle_failure(lease, error, retryable)
            return None
        try:
            answer = await self.queue.fail_and_lease(
                lease.job_id, lease.token, error, retryable, self.worker_id, self.settings.lease_ttl
            )
        except WorkQueueError as exc:
            log.warning("fail_and_lease failed (%s); settling on its own", exc)
            await self._settle_failure(lease, error, retryable)
            return None
        if answer.state is not None:
            self._count_failed(lease, error, answer.state)
        elif answer.outcome is not None:
            self._count_settled(lease, answer.outcome)
        return answer.next_lease

    def _count_settled(self, lease: Lease, outcome: CompleteOutcome) -> None:
        if outcome in (CompleteOutcome.COMPLETED, CompleteOutcome.ALREADY_COMPLETED):
            self.report.completed += 1
        elif outcome is CompleteOutcome.LEASE_LOST:
            self.report.leases_lost += 1
            log.warning(
                "settling too late: lease %s no longer holds job %s", lease.token, lease.job_id
            )
        else:
            self.report.errors.append(f"{JobNotFoundError.default_code}: no job {lease.job_id}")
            log.error("could not settle a job: no job %s", lease.job_id)

    def _count_failed(
        self, lease: Lease, error: error_pb2.ErrorDetail, state: work_state_pb2.WorkState.ValueType
    ) -> None:
        if state == DEAD:
            log.error("job %s dead-lettered: %s %s", lease.job_id, error.code, error.message)
            self.report.dead_lettered += 1
            metrics.DEAD_LETTERS.labels("failed").inc()
        else:
            self.report.retried += 1

    async def _complete(self, lease: Lease, result: bytes) -> None:
        await self.queue.complete(lease.job_id, lease.token, result)
        self.report.completed += 1

    async def _settle_failure(
        self, lease: Lease, error: error_pb2.ErrorDetail, retryable: bool
    ) -> None:
        async def fail() -> None:
            state = await self.queue.fail(lease.job_id, lease.token, error, retryable)
            self._count_failed(lease, error, state)

        await self._settle(fail)

    async def _release(self, lease: Lease) -> None:
        async def release() -> None:
            await self.queue.release(lease.job_id, lease.token)
            self.report.released += 1

        await self._settle(release)

    async def _settle(self, action: Callable[[], Awaitable[None]]) -> None:
        """Runs a settle call, retrying while the store is unavailable (settling is idempotent).

        Gives up when the lease is lost, or when an abort is requested: the lease then simply
        expires and the reaper hands the job to someone else.
        """
        backoff = self.settings.poll_interval
        while True:
            try:
                await action()
                return
            except LeaseLostError as exc:
                self.report.leases_lost += 1
                log.warning("settling too late: %s", exc)
                return
            except WorkQueueError as exc:
                if not exc.retryable or self.shutdown.aborting.is_set():
                    self.report.errors.append(f"{exc.code}: {exc}")
                    log.error("could not settle a job: %s", exc)
                    return
                log.warning("settling failed (%s); retrying in %.2fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.max_backoff)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


def _being_cancelled() -> bool:
    """Whether the running task has a cancellation pending from outside (not a scope's)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def run_worker(
    queue: WorkQueue,
    handler: Handler,
    *,
    worker_id: str,
    settings: WorkerSettings | None = None,
    shutdown: Shutdown | None = None,
    handle_signals: bool = True,
) -> WorkerReport:
    """Works the queue until shutdown; returns what this worker did.

    With `handle_signals`, SIGTERM and SIGINT call `shutdown.request()` (first: drain,
    second: release and exit); the previous handlers are restored on return.
    """
    shutdown = shutdown or Shutdown()
    worker = _Worker(queue, handler, worker_id, settings or WorkerSettings(), shutdown)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for signum in signals:
        loop.add_signal_handler(signum, shutdown.request)
    try:
        return await worker.run()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
