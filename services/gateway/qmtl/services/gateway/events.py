"""The events the Gateway raises: StrategyStateChanged, one per transition, on the strategy
events topic (qmtl.events.strategy), built by the runtime's envelope builder.

An event's idempotency key names the strategy, the transition and the work item that drove it,
so the same fact raised twice (a worker re-running a job) carries the same key; the store's
compare-and-set already writes each transition once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from qmtl.common.v1 import error_pb2
from qmtl.dag.v1 import diff_result_pb2, strategy_pb2
from qmtl.events.v1 import event_pb2, strategy_events_pb2
from qmtl.runtime.eventbus.topics import STRATEGY_EVENTS
from qmtl.runtime.events import make_event

STATE_CHANGED = "qmtl.gateway.strategy_state_changed"
PUBLISHED = frozenset({"strategy_state_changed", "dag_changed"})

Announcement = tuple[str, event_pb2.Event]


def subject(strategy_id: str) -> str:
    return f"strategies/{strategy_id}"


def state_changed(
    strategy_id: str,
    from_state: int,
    to_state: int,
    *,
    work_item_id: str,
    source: str,
    diff: diff_result_pb2.DiffResult | None = None,
    error: error_pb2.ErrorDetail | None = None,
    clock: Callable[[], float] = time.time,
) -> Announcement:
    """The (topic, event) announcing `strategy_id`'s move from `from_state` to `to_state`."""
    payload = strategy_events_pb2.StrategyStateChanged(
        strategy_id=strategy_id,
        from_state=from_state,  # type: ignore[arg-type]
        to_state=to_state,  # type: ignore[arg-type]
        work_item_id=work_item_id,
    )
    if diff is not None:
        payload.diff.CopyFrom(diff)
    if error is not None:
        payload.error.CopyFrom(error)
    names = strategy_pb2.StrategyState.Name
    key = (
        f"strategy_state_changed:{strategy_id}:"
        f"{names(from_state)}->{names(to_state)}:{work_item_id}"  # type: ignore[arg-type]
    )
    event = make_event(
        "strategy_state_changed",
        payload,
        subject=subject(strategy_id),
        idempotency_key=key,
        source=source,
        correlation_id=work_item_id,
        clock=clock,
        publishes=PUBLISHED,
    )
    return STRATEGY_EVENTS, event
