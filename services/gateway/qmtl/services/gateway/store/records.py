"""What both adapters do the same way before touching their state: validate the arguments,
stamp the store's times, build the record a write leaves behind. A write validates everything
first, so a refused call writes nothing (a Redis script cannot roll back a half-done write)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from google.protobuf import timestamp_pb2

from qmtl.common.v1 import error_pb2
from qmtl.dag.v1 import diff_result_pb2, node_status_pb2, strategy_pb2
from qmtl.events.v1 import event_pb2
from qmtl.runtime.eventbus.errors import InvalidEventError
from qmtl.runtime.eventbus.model import check_publishable
from qmtl.runtime.graphstore.outbox import MAX_OUTBOX_PAYLOAD_BYTES

from .errors import InvalidStrategyInputError, StrategyTooLargeError
from .port import (
    MAX_EVENTS_PER_WRITE,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_NODE_STATES_PER_REPORT,
    MAX_PAGE,
    MAX_STRATEGY_BYTES,
    Announcement,
)

_STATES = frozenset(strategy_pb2.StrategyState.values()) - {strategy_pb2.STRATEGY_STATE_UNSPECIFIED}


def to_ms(seconds: float) -> int:
    """Store times are whole milliseconds: the Redis listing scores are, and both adapters must
    order equal times the same way."""
    return int(seconds * 1000)


def ms_of(stamp: timestamp_pb2.Timestamp) -> int:
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


def _stamp(target: timestamp_pb2.Timestamp, ms: int) -> None:
    target.seconds, rest = divmod(ms, 1000)
    target.nanos = rest * 1_000_000


def check_id(strategy_id: str) -> None:
    if not strategy_id:
        raise InvalidStrategyInputError("must not be empty", field="strategy_id")


def check_state(state: int, field: str) -> None:
    if state not in _STATES:
        raise InvalidStrategyInputError(f"{state} is not a StrategyState", field=field)


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidStrategyInputError(f"must be 1..{MAX_PAGE}, got {limit}", field="limit")


def check_events(events: Sequence[Announcement]) -> None:
    """Refuses what the relay could not publish (qmtl.runtime.eventbus.model.check_publishable)
    or the outbox would keep only once (two events with one id)."""
    if len(events) > MAX_EVENTS_PER_WRITE:
        raise InvalidStrategyInputError(
            f"{len(events)} events in one write, the limit is {MAX_EVENTS_PER_WRITE}",
            field="events",
        )
    seen: set[str] = set()
    for index, (topic, event) in enumerate(events):
        try:
            check_publishable(topic, [event])
        except InvalidEventError as exc:
            field = exc.field.replace("events[0]", f"events[{index}]")
            raise InvalidStrategyInputError(exc.message, field=field) from exc
        if event.id in seen:
            raise InvalidStrategyInputError(
                f"event id {event.id!r} twice in one write", field=f"events[{index}].id"
            )
        seen.add(event.id)
        if event.ByteSize() > MAX_OUTBOX_PAYLOAD_BYTES:
            raise StrategyTooLargeError(
                f"{event.ByteSize()} bytes, the limit is {MAX_OUTBOX_PAYLOAD_BYTES}",
                field=f"events[{index}]",
            )


def check_record_size(record: bytes) -> None:
    if len(record) > MAX_STRATEGY_BYTES:
        raise StrategyTooLargeError(
            f"the strategy record is {len(record)} bytes serialized, "
            f"the limit is {MAX_STRATEGY_BYTES}",
            field="strategy",
        )


def new_record(
    strategy: strategy_pb2.Strategy,
    *,
    idempotency_key: str,
    fingerprint: str,
    events: Sequence[Announcement],
    now_ms: int,
) -> strategy_pb2.Strategy:
    """The record `create` stores: a copy of `strategy` with both times set to now."""
    check_id(strategy.strategy_id)
    if not strategy.dag_hash:
        raise InvalidStrategyInputError("must not be empty", field="strategy.dag_hash")
    check_state(strategy.state, "strategy.state")
    if len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidStrategyInputError(
            f"{len(idempotency_key)} characters, the limit is {MAX_IDEMPOTENCY_KEY_LENGTH}",
            field="idempotency_key",
        )
    if idempotency_key and not fingerprint:
        raise InvalidStrategyInputError(
            "must not be empty with an idempotency key", field="fingerprint"
        )
    check_events(events)
    record = strategy_pb2.Strategy()
    record.CopyFrom(strategy)
    _stamp(record.created_at, now_ms)
    _stamp(record.updated_at, now_ms)
    return record


def transitioned(
    current: strategy_pb2.Strategy,
    *,
    to: int,
    diff: diff_result_pb2.DiffResult | None,
    error: error_pb2.ErrorDetail | None,
    now_ms: int,
) -> strategy_pb2.Strategy:
    record = strategy_pb2.Strategy()
    record.CopyFrom(current)
    record.state = to  # type: ignore[assignment]
    if diff is not None:
        record.diff.CopyFrom(diff)
    if error is not None:
        record.error.CopyFrom(error)
    else:
        record.ClearField("error")
    _stamp(record.updated_at, now_ms)
    return record


def with_work_item(
    current: strategy_pb2.Strategy, work_item_id: str, now_ms: int
) -> strategy_pb2.Strategy:
    record = strategy_pb2.Strategy()
    record.CopyFrom(current)
    record.work_item_id = work_item_id
    _stamp(record.updated_at, now_ms)
    return record


def check_transition(expect: Collection[int], to: int) -> frozenset[int]:
    expected = frozenset(expect)
    if not expected:
        raise InvalidStrategyInputError("must name at least one state", field="expect")
    for state in expected:
        check_state(state, "expect")
    check_state(to, "to")
    return expected


def check_work_item(work_item_id: str) -> None:
    if not work_item_id:
        raise InvalidStrategyInputError("must not be empty", field="work_item_id")


def check_node_states(states: Sequence[node_status_pb2.NodeState]) -> None:
    if len(states) > MAX_NODE_STATES_PER_REPORT:
        raise InvalidStrategyInputError(
            f"{len(states)} node states in one report, the limit is {MAX_NODE_STATES_PER_REPORT}",
            field="states",
        )
    for index, state in enumerate(states):
        if not state.node_id:
            raise InvalidStrategyInputError("must not be empty", field=f"states[{index}].node_id")


def event_matches(event: event_pb2.Event, types: frozenset[str], since: float | None) -> bool:
    if types and event.type not in types:
        return False
    return since is None or event.time.seconds + event.time.nanos / 1e9 >= since
