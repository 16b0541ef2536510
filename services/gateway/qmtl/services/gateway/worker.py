"""SubmitWorker: works the Gateway's queue (qmtl.runtime.workqueue.run_worker: leasing,
heartbeats, backoff, dead letters) and dispatches each job by its type.

WORK_TYPE_STRATEGY_DIFF (docs/operations/gateway.md, "The worker"):
1. read the strategy; COMPLETED already (a re-run after a crash, or another worker won) queues
   the callback that may have been missed and answers; FAILED already answers the job failed;
2. QUEUED -> PROCESSING (a re-leased job may find PROCESSING: it goes on);
3. DAG Manager `Diff` with the stored DAG, `settings.diff_timeout` as its deadline;
4. success: PROCESSING -> COMPLETED with the diff and its StrategyStateChanged, in one
   compare-and-set, so two workers racing one strategy store one COMPLETED event; then the
   callback job when the strategy has a callback URL;
5. a non-retryable QmtlError, or a retryable one on the job's last attempt: PROCESSING ->
   FAILED with the error (event and callback too, and a WorkItemDeadLettered alert in the same
   outbox write) and the job dead-letters with that error;
   a retryable one before the last attempt fails the job retryably: the queue retries it
   after its BackoffPolicy's delay.
WORK_TYPE_CALLBACK_DELIVERY jobs go to `callbacks` (a CallbackDeliverer): one worker loop
serves both types, so a process runs one loop per `worker_id`. A worker without a deliverer
fails callback jobs retryably (E_UNAVAILABLE) so that a worker that has one takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

from qmtl.common.v1 import error_pb2
from qmtl.dag.v1 import diff_result_pb2, strategy_pb2
from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.dagmanager.v1.dag_manager_service_handler import DAG_MANAGER_SERVICE
from qmtl.runtime.alerts.model import ERROR, WORK_ITEM_DEAD_LETTERED, alert_event
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.eventbus.topics import OPS_EVENTS
from qmtl.runtime.rpc_caller import RpcCaller
from qmtl.runtime.spec import RpcSpec
from qmtl.runtime.workqueue import (
    JobFailedError,
    Shutdown,
    WorkerReport,
    WorkQueue,
    run_worker,
)
from qmtl.work.v1 import work_item_pb2, work_type_pb2

from . import events
from .callbacks import enqueue_callback, enqueue_missed_callback
from .config import SERVICE
from .settings import GatewaySettings
from .store.errors import InvalidStateError, StrategyStoreError
from .store.port import StrategyStore
from .stranded import requeue_stranded
from .submit import diff_key, diff_request
from .waiting import Completions

_log = logging.getLogger(__name__)

QUEUED = strategy_pb2.STRATEGY_STATE_QUEUED
PROCESSING = strategy_pb2.STRATEGY_STATE_PROCESSING
COMPLETED = strategy_pb2.STRATEGY_STATE_COMPLETED
FAILED = strategy_pb2.STRATEGY_STATE_FAILED

DIFF = cast(
    RpcSpec[diff_messages_pb2.DiffRequest, diff_messages_pb2.DiffResponse],
    DAG_MANAGER_SERVICE.rpc("Diff"),
)

JobHandler = Callable[[work_item_pb2.WorkItem], Coroutine[Any, Any, bytes]]


def _kept_error(strategy: strategy_pb2.Strategy) -> error_pb2.ErrorDetail | None:
    """The last failure, kept on a strategy that moves on (strategy.proto, `error`)."""
    return strategy.error if strategy.HasField("error") else None


def _is_current(strategy: strategy_pb2.Strategy, item: work_item_pb2.WorkItem) -> bool:
    """Whether `item` is the job that processes `strategy` now: the one it records, or the
    successor of that one whose attach_work_item has not landed yet (a job may be leased
    between its enqueue and that write). Any other job is stale (replaced by a retry)."""
    return (
        not strategy.work_item_id
        or strategy.work_item_id == item.id
        or item.idempotency_key == diff_key(strategy.strategy_id, strategy.work_item_id)
    )


class SubmitWorker:
    """One run_worker loop over `queue` (see the module doc). `notify` is called after each
    store write that put events in the outbox (the relay's `notify`); `completions` wakes this
    process's waiting submissions. `sweep_interval`, when set, runs `requeue_stranded` that
    often while the worker runs."""

    def __init__(
        self,
        store: StrategyStore,
        queue: WorkQueue,
        dag_manager: RpcCaller,
        *,
        worker_id: str,
        callbacks: JobHandler | None = None,
        settings: GatewaySettings | None = None,
        notify: Callable[[], None] | None = None,
        completions: Completions | None = None,
        clock: Callable[[], float] = time.time,
        sweep_interval: float | None = None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.dag_manager = dag_manager
        self.worker_id = worker_id
        self.callbacks = callbacks
        self.settings = settings if settings is not None else GatewaySettings()
        self._notify = notify
        self.completions = completions if completions is not None else Completions()
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._shutdown = Shutdown()
        self._task: asyncio.Task[WorkerReport] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.report: WorkerReport | None = None

    def start(self) -> None:
        if self._task is not None:
            return
        self._task = asyncio.create_task(
            run_worker(
                self.queue,
                self.handle,
                worker_id=self.worker_id,
                settings=self.settings.worker,
                shutdown=self._shutdown,
                handle_signals=False,
            ),
            name=f"submit-worker-{self.worker_id}",
        )
        if self._sweep_interval is not None:
            self._sweeper = asyncio.create_task(self._sweep(self._sweep_interval))

    async def stop(self) -> WorkerReport | None:
        """Stops leasing, lets the job in hand finish, and returns what the worker did."""
        if self._task is None:
            return self.report
        self._shutdown.request()
        if self._sweeper is not None:
            await self._sweeper
        self.report = await self._task
        self._task = None
        return self.report

    async def _sweep(self, interval: float) -> None:
        while not self._shutdown.draining.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._shutdown.draining.wait(), timeout=interval)
            if self._shutdown.draining.is_set():
                return
            try:
                await requeue_stranded(
                    self.store,
                    self.queue,
                    self.settings.stranded_after,
                    settings=self.settings,
                    clock=self._clock,
                    notify=self._notify,
                )
            except Exception:  # a store or queue outage: the next round tries again
                _log.exception("the stranded-strategy sweep failed")

    async def handle(self, item: work_item_pb2.WorkItem) -> bytes:
        """The run_worker handler: one job, dispatched by its type."""
        if item.type == work_type_pb2.WORK_TYPE_CALLBACK_DELIVERY:
            if self.callbacks is None:
                raise JobFailedError(
                    f"worker {self.worker_id} has no callback deliverer",
                    code="E_UNAVAILABLE",
                    retryable=True,
                )
            return await self.callbacks(item)
        if item.type != work_type_pb2.WORK_TYPE_STRATEGY_DIFF:
            raise JobFailedError(
                f"the Gateway has no handler for work type {item.type}",
                code="E_UNKNOWN_WORK_TYPE",
                retryable=False,
            )
        try:
            return await self._diff(item)
        except StrategyStoreError as exc:
            raise JobFailedError(exc.message, code=exc.code, retryable=exc.retryable) from exc

    async def _diff(self, item: work_item_pb2.WorkItem) -> bytes:
        payload = diff_messages_pb2.DiffRequest.FromString(item.payload)
        strategy_id = payload.strategy_id or item.strategy_id
        try:
            strategy = await self._processing(item, strategy_id)
        except _AlreadyDone as done:
            return done.strategy.diff.SerializeToString(deterministic=True)
        try:
            response = await self.dag_manager.call(
                DIFF, diff_request(strategy), timeout=self.settings.diff_timeout
            )
        except QmtlError as error:
            return await self._failed_attempt(item, strategy, error)
        except Exception as exc:  # a caller bug: retried as an internal error, never a crash
            _log.exception("the Diff call of strategy %s crashed", strategy_id)
            crashed = QmtlError(
                ErrorCode.ERROR_CODE_INTERNAL,
                f"the Diff call crashed: {type(exc).__name__}",
                retryable=True,
            )
            return await self._failed_attempt(item, strategy, crashed)
        finished = await self._finish(item, strategy, COMPLETED, diff=response.result)
        return finished.diff.SerializeToString(deterministic=True)

    async def _processing(
        self, item: work_item_pb2.WorkItem, strategy_id: str
    ) -> strategy_pb2.Strategy:
        """The strategy moved to PROCESSING by this job; raises to end a job with nothing to
        do (the strategy is gone, finished, or now processed by another job)."""
        strategy = await self.store.get(strategy_id)
        while True:
            if strategy is None:
                raise JobFailedError(
                    f"strategy {strategy_id!r} does not exist", code="E_NOT_FOUND", retryable=False
                )
            if not _is_current(strategy, item):
                raise JobFailedError(
                    f"strategy {strategy_id} is processed by work item {strategy.work_item_id}",
                    code="E_INVALID_STATE",
                    retryable=False,
                )
            if strategy.state in (COMPLETED, FAILED):
                await self._missed_callback(strategy)
                if strategy.state == COMPLETED:
                    raise _AlreadyDone(strategy)
                raise JobFailedError(
                    f"strategy {strategy_id} is already FAILED",
                    code="E_INVALID_STATE",
                    retryable=False,
                )
            if strategy.state == PROCESSING:
                return strategy
            try:
                moved = await self.store.transition(
                    strategy_id,
                    expect=(QUEUED,),
                    to=PROCESSING,
                    error=_kept_error(strategy),
                    events=[self._event(strategy, PROCESSING, item.id)],
                )
            except InvalidStateError:
                strategy = await self.store.get(strategy_id)
                continue
            self._announced()
            return moved

    async def _failed_attempt(
        self, item: work_item_pb2.WorkItem, strategy: strategy_pb2.Strategy, error: QmtlError
    ) -> bytes:
        """Ends this attempt: raises the job's failure, retryable unless it is the job's last,
        when the strategy is FAILED first. Returns only when another worker completed it."""
        last = not error.retryable or item.attempts >= max(item.max_attempts, 1)
        if last:
            detail = error.to_proto()
            detail.retryable = False
            alert = self._dead_letter_alert(item, strategy, error)
            finished = await self._finish(item, strategy, FAILED, error=detail, also=[alert])
            if finished.state == COMPLETED:
                return finished.diff.SerializeToString(deterministic=True)
            _log.warning(
                "strategy %s FAILED after %d attempt(s): %s %s",
                strategy.strategy_id,
                item.attempts,
                error.wire_code,
                error.message,
            )
        raise JobFailedError(error.message, code=error.wire_code, retryable=not last)

    async def _finish(
        self,
        item: work_item_pb2.WorkItem,
        strategy: strategy_pb2.Strategy,
        to: int,
        *,
        diff: diff_result_pb2.DiffResult | None = None,
        error: error_pb2.ErrorDetail | None = None,
        also: Sequence[events.Announcement] = (),
    ) -> strategy_pb2.Strategy:
        """PROCESSING -> COMPLETED or FAILED, once: the loser of a race stores nothing and gets
        the strategy as the winner left it. `also` goes to the outbox in the same write."""
        topic, event = self._event(strategy, to, item.id, diff=diff, error=error)
        try:
            stored = await self.store.transition(
                strategy.strategy_id,
                expect=(PROCESSING,),
                to=to,
                diff=diff,
                error=error if error is not None else _kept_error(strategy),
                events=[(topic, event), *also],
            )
        except InvalidStateError as exc:
            current = await self.store.get(strategy.strategy_id)
            if current is None or current.state not in (COMPLETED, FAILED):
                raise JobFailedError(exc.message, code=exc.code, retryable=False) from exc
            _log.info("strategy %s was finished by another worker", strategy.strategy_id)
            await self._missed_callback(current)
            return current
        self._announced()
        self.completions.notify(strategy.strategy_id)
        await enqueue_callback(
            self.queue, stored, event, max_attempts=self.settings.callback_max_attempts
        )
        return stored

    async def _missed_callback(self, strategy: strategy_pb2.Strategy) -> None:
        await enqueue_missed_callback(
            self.store, self.queue, strategy, max_attempts=self.settings.callback_max_attempts
        )

    def _event(
        self,
        strategy: strategy_pb2.Strategy,
        to: int,
        work_item_id: str,
        **fields: Any,
    ) -> events.Announcement:
        return events.state_changed(
            strategy.strategy_id,
            strategy.state,
            to,
            work_item_id=work_item_id,
            source=self.settings.source,
            clock=self._clock,
            **fields,
        )

    def _dead_letter_alert(
        self, item: work_item_pb2.WorkItem, strategy: strategy_pb2.Strategy, error: QmtlError
    ) -> events.Announcement:
        """WorkItemDeadLettered, written with the FAILED state: one-off, keyed by the job."""
        event = alert_event(
            WORK_ITEM_DEAD_LETTERED,
            level=ERROR,
            service=SERVICE,
            instance_id=self.worker_id,
            target_id=strategy.strategy_id,
            message=(
                f"diff job {item.id} of strategy {strategy.strategy_id} dead-lettered after "
                f"{item.attempts} attempt(s): {error.wire_code} {error.message}"
            ),
            source=self.settings.source,
            dedupe_key=f"{WORK_ITEM_DEAD_LETTERED}:{item.id}",
            idempotency_key=f"work_item_dead_lettered:{item.id}",
            correlation_id=item.id,
            attributes={
                "job_id": item.id,
                "attempts": str(item.attempts),
                "error_code": error.wire_code,
            },
            clock=self._clock,
        )
        return OPS_EVENTS, event

    def _announced(self) -> None:
        if self._notify is not None:
            self._notify()


class _AlreadyDone(Exception):
    def __init__(self, strategy: strategy_pb2.Strategy) -> None:
        super().__init__(strategy.strategy_id)
        self.strategy = strategy
