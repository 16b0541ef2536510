"""requeue_stranded: no accepted strategy is left without a work item that will finish it.

A submission writes the strategy (QUEUED) and then enqueues its diff job: a crash or a queue
outage between the two leaves a QUEUED strategy with no job. A job can also end without its
strategy finishing (its retention ran out, the queue's data was lost, or the reaper dead-
lettered it after the leases of crashed workers expired). Boot recovery and the worker's
periodic sweep call `requeue_stranded`, which looks at every QUEUED and PROCESSING strategy
untouched for `older_than` seconds and:
- no work item, or one that is gone (or finished without finishing the strategy): enqueues
  the next diff job (the idempotency key derives from the strategy and the job it replaces,
  so a submit or retry doing the same at the same moment meets the same job);
- a DEAD work item: QUEUED (a RetryStrategy that crashed before its enqueue) gets a new job;
  PROCESSING (its attempts ran out before a worker could record it) becomes FAILED with the
  job's last error.
A strategy whose work item is READY, LEASED or DELAYED is left alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from qmtl.common.v1 import error_pb2
from qmtl.dag.v1 import strategy_pb2
from qmtl.runtime.workqueue import WorkQueue
from qmtl.work.v1 import work_item_pb2, work_state_pb2

from . import events
from .callbacks import enqueue_callback
from .settings import GatewaySettings
from .store.errors import InvalidStateError
from .store.port import MAX_PAGE, StrategyStore
from .submit import enqueue_diff

_log = logging.getLogger(__name__)

QUEUED = strategy_pb2.STRATEGY_STATE_QUEUED
PROCESSING = strategy_pb2.STRATEGY_STATE_PROCESSING
FAILED = strategy_pb2.STRATEGY_STATE_FAILED
_ALIVE = frozenset(
    {
        work_state_pb2.WORK_STATE_READY,
        work_state_pb2.WORK_STATE_LEASED,
        work_state_pb2.WORK_STATE_DELAYED,
    }
)
LOST_WORK = "E_WORK_LOST"


@dataclass(slots=True)
class StrandedReport:
    checked: int = 0
    requeued: int = 0
    failed: int = 0


async def requeue_stranded(
    store: StrategyStore,
    queue: WorkQueue,
    older_than: float,
    *,
    settings: GatewaySettings | None = None,
    clock: Callable[[], float] = time.time,
    notify: Callable[[], None] | None = None,
) -> StrandedReport:
    """See the module doc; returns what it found and did."""
    settings = settings if settings is not None else GatewaySettings()
    report = StrandedReport()
    cutoff = clock() - older_than
    for state in (QUEUED, PROCESSING):
        cursor = ""
        while True:
            page, cursor = await store.list(state=state, limit=MAX_PAGE, cursor=cursor)
            for strategy in page:
                if strategy.updated_at.ToNanoseconds() / 1e9 > cutoff:
                    continue
                report.checked += 1
                await _recover(store, queue, strategy, settings, clock, notify, report)
            if not cursor:
                break
    if report.requeued or report.failed:
        _log.warning(
            "stranded strategies: %d requeued, %d failed (of %d checked)",
            report.requeued,
            report.failed,
            report.checked,
        )
    return report


async def _recover(
    store: StrategyStore,
    queue: WorkQueue,
    strategy: strategy_pb2.Strategy,
    settings: GatewaySettings,
    clock: Callable[[], float],
    notify: Callable[[], None] | None,
    report: StrandedReport,
) -> None:
    item = await queue.get(strategy.work_item_id) if strategy.work_item_id else None
    if item is not None and item.state in _ALIVE:
        return
    if (
        item is not None
        and item.state == work_state_pb2.WORK_STATE_DEAD
        and (strategy.state == PROCESSING)
    ):
        await _fail(store, queue, strategy, item, settings, clock, notify, report)
        return
    await enqueue_diff(
        store,
        queue,
        strategy,
        max_attempts=settings.diff_max_attempts,
        previous_work_item_id=strategy.work_item_id,
    )
    report.requeued += 1


async def _fail(
    store: StrategyStore,
    queue: WorkQueue,
    strategy: strategy_pb2.Strategy,
    item: work_item_pb2.WorkItem,
    settings: GatewaySettings,
    clock: Callable[[], float],
    notify: Callable[[], None] | None,
    report: StrandedReport,
) -> None:
    error = error_pb2.ErrorDetail()
    if item.HasField("error"):
        error.CopyFrom(item.error)
    else:
        error.code = LOST_WORK
        error.message = f"work item {item.id} ended without finishing the strategy"
    error.retryable = False
    topic, event = events.state_changed(
        strategy.strategy_id,
        strategy.state,
        FAILED,
        work_item_id=item.id,
        source=settings.source,
        error=error,
        clock=clock,
    )
    try:
        stored = await store.transition(
            strategy.strategy_id,
            expect=(PROCESSING,),
            to=FAILED,
            error=error,
            events=[(topic, event)],
        )
    except InvalidStateError:
        return  # a worker finished it meanwhile
    if notify is not None:
        notify()
    report.failed += 1
    await enqueue_callback(queue, stored, event, max_attempts=settings.callback_max_attempts)
