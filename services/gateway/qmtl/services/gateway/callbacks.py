"""Queuing a strategy's callback: the StrategyStateChanged events of its terminal transitions
(COMPLETED, FAILED) are POSTed to its `callback_url` by a WORK_TYPE_CALLBACK_DELIVERY job
(qmtl.runtime.callbacks.delivery), one job per strategy and event id."""

from __future__ import annotations

from qmtl.dag.v1 import strategy_pb2
from qmtl.events.v1 import event_pb2
from qmtl.runtime.callbacks.delivery import callback_job
from qmtl.runtime.workqueue import WorkQueue

from .events import STATE_CHANGED
from .store.port import StrategyStore

# How far back a re-run worker looks for the event whose callback may not have been queued:
# the store keeps each strategy's newest 1,000 events, far more than one strategy's few
# transitions.
_EVENT_SCAN = 1_000


async def enqueue_callback(
    queue: WorkQueue,
    strategy: strategy_pb2.Strategy,
    event: event_pb2.Event,
    *,
    max_attempts: int,
) -> bool:
    """Queues the delivery of `event` when the strategy has a callback URL; True if it has.
    Idempotent: the job's key is the strategy and the event id."""
    if not strategy.callback_url:
        return False
    item, key = callback_job(
        strategy.strategy_id, strategy.callback_url, event, max_attempts=max_attempts
    )
    await queue.enqueue(item, key)
    return True


async def enqueue_missed_callback(
    store: StrategyStore, queue: WorkQueue, strategy: strategy_pb2.Strategy, *, max_attempts: int
) -> bool:
    """Queues the callback of the strategy's stored transition into its current (terminal)
    state again: for a job re-run after a crash between that transition and the callback's
    enqueue. A callback already queued is not queued twice (same key)."""
    if not strategy.callback_url:
        return False
    events, _ = await store.events(
        strategy_id=strategy.strategy_id, types=(STATE_CHANGED,), limit=_EVENT_SCAN
    )
    for event in reversed(events):
        if event.strategy_state_changed.to_state == strategy.state:
            return await enqueue_callback(queue, strategy, event, max_attempts=max_attempts)
    return False
