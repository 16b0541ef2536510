"""MemoryStrategyStore: the embedded default, everything in one process's memory.

One asyncio lock serialises the writes; a write changes the state, appends its events to the
outbox (MemoryOutbox.append_now, synchronous) and to the event log before releasing it, so
nobody sees one without the others. Records are copied in and out: a caller mutating what it
got back cannot change the store.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from qmtl.common.v1 import error_pb2
from qmtl.dag.v1 import diff_result_pb2, node_status_pb2, strategy_pb2
from qmtl.events.v1 import event_pb2
from qmtl.runtime.outbox import MemoryOutbox

from . import cursors, records
from .errors import (
    IdempotencyConflictError,
    InvalidStateError,
    StrategyIdTakenError,
    StrategyNotFoundError,
)
from .port import (
    DEFAULT_EVENT_LOG_CAP,
    DEFAULT_STRATEGY_EVENT_LOG_CAP,
    IDEMPOTENCY_TTL_SECONDS,
    Announcement,
    Clock,
    Created,
    Outcome,
)


@dataclass(frozen=True, slots=True)
class _Claim:
    strategy_id: str
    fingerprint: str
    expires_ms: int


def _copy(strategy: strategy_pb2.Strategy) -> strategy_pb2.Strategy:
    copy = strategy_pb2.Strategy()
    copy.CopyFrom(strategy)
    return copy


def _found(
    stored: strategy_pb2.Strategy, proposed: strategy_pb2.Strategy, outcome: Outcome
) -> Created:
    # The same strategy id means the same call again (a retry): it created that strategy.
    if stored.strategy_id == proposed.strategy_id:
        return Created(_copy(stored), "created")
    return Created(_copy(stored), outcome)


class MemoryStrategyStore:
    def __init__(
        self,
        *,
        clock: Clock = time.time,
        outbox: MemoryOutbox | None = None,
        event_log_cap: int = DEFAULT_EVENT_LOG_CAP,
        strategy_event_log_cap: int = DEFAULT_STRATEGY_EVENT_LOG_CAP,
        idempotency_ttl: float = IDEMPOTENCY_TTL_SECONDS,
    ) -> None:
        self.outbox = outbox if outbox is not None else MemoryOutbox(clock=clock)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._records: dict[str, strategy_pb2.Strategy] = {}
        self._by_dag: dict[str, str] = {}
        self._claims: dict[str, _Claim] = {}
        self._nodes: dict[str, dict[str, bytes]] = {}
        self._seq = 0
        self._log: deque[tuple[int, bytes]] = deque(maxlen=event_log_cap)
        self._strategy_logs: dict[str, deque[tuple[int, bytes]]] = {}
        self._strategy_log_cap = strategy_event_log_cap
        self._idempotency_ttl_ms = records.to_ms(idempotency_ttl)

    def _now_ms(self) -> int:
        return records.to_ms(self._clock())

    def _announce(self, strategy_id: str, events: Sequence[Announcement]) -> None:
        log = self._strategy_logs.setdefault(strategy_id, deque(maxlen=self._strategy_log_cap))
        for topic, event in events:
            self.outbox.append_now(topic, [event])
            self._seq += 1
            entry = (self._seq, event.SerializeToString())
            self._log.append(entry)
            log.append(entry)

    def _live_claim(self, key: str, now_ms: int) -> _Claim | None:
        claim = self._claims.get(key)
        if claim is None or claim.expires_ms <= now_ms:
            return None
        return claim

    async def create(
        self,
        strategy: strategy_pb2.Strategy,
        *,
        idempotency_key: str,
        fingerprint: str,
        events: Sequence[Announcement],
    ) -> Created:
        async with self._lock:
            now_ms = self._now_ms()
            record = records.new_record(
                strategy,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                events=events,
                now_ms=now_ms,
            )
            records.check_record_size(record.SerializeToString())
            claim = self._live_claim(idempotency_key, now_ms) if idempotency_key else None
            if claim is not None:
                if claim.fingerprint != fingerprint:
                    raise IdempotencyConflictError(idempotency_key, claim.strategy_id)
                return _found(self._records[claim.strategy_id], record, "replayed")
            holder = self._by_dag.get(record.dag_hash)
            if holder is not None:
                return _found(self._records[holder], record, "duplicate")
            if record.strategy_id in self._records:
                raise StrategyIdTakenError(
                    f"strategy id {record.strategy_id!r} is taken", field="strategy.strategy_id"
                )
            self._records[record.strategy_id] = record
            self._by_dag[record.dag_hash] = record.strategy_id
            if idempotency_key:
                self._claims[idempotency_key] = _Claim(
                    record.strategy_id, fingerprint, now_ms + self._idempotency_ttl_ms
                )
            self._announce(record.strategy_id, events)
            return Created(_copy(record), "created")

    async def get(self, strategy_id: str) -> strategy_pb2.Strategy | None:
        record = self._records.get(strategy_id)
        return None if record is None else _copy(record)

    async def list(
        self, *, state: int = 0, limit: int, cursor: str = ""
    ) -> tuple[builtins.list[strategy_pb2.Strategy], str]:
        records.check_limit(limit)
        if state:
            records.check_state(state, "state")
        after = cursors.list_position(state, cursor)
        keyed = sorted(
            (
                ((records.ms_of(r.created_at), r.strategy_id), r)
                for r in self._records.values()
                if not state or r.state == state
            ),
            key=lambda pair: pair[0],
            reverse=True,
        )
        page = [r for key, r in keyed if after is None or key < after][: limit + 1]
        if len(page) <= limit:
            return [_copy(r) for r in page], ""
        page = page[:limit]
        last = page[-1]
        next_cursor = cursors.list_cursor(state, records.ms_of(last.created_at), last.strategy_id)
        return [_copy(r) for r in page], next_cursor

    async def attach_work_item(self, strategy_id: str, work_item_id: str) -> strategy_pb2.Strategy:
        records.check_id(strategy_id)
        records.check_work_item(work_item_id)
        async with self._lock:
            current = self._records.get(strategy_id)
            if current is None:
                raise StrategyNotFoundError(strategy_id)
            record = records.with_work_item(current, work_item_id, self._now_ms())
            self._records[strategy_id] = record
            return _copy(record)

    async def transition(
        self,
        strategy_id: str,
        *,
        expect: Collection[int],
        to: int,
        diff: diff_result_pb2.DiffResult | None = None,
        error: error_pb2.ErrorDetail | None = None,
        events: Sequence[Announcement] = (),
    ) -> strategy_pb2.Strategy:
        records.check_id(strategy_id)
        expected = records.check_transition(expect, to)
        records.check_events(events)
        async with self._lock:
            current = self._records.get(strategy_id)
            if current is None:
                raise StrategyNotFoundError(strategy_id)
            if current.state not in expected:
                raise InvalidStateError(
                    current.state, strategy_id=strategy_id, expected=expected, to=to
                )
            record = records.transitioned(
                current, to=to, diff=diff, error=error, now_ms=self._now_ms()
            )
            records.check_record_size(record.SerializeToString())
            self._records[strategy_id] = record
            self._announce(strategy_id, events)
            return _copy(record)

    async def report_node_states(
        self, strategy_id: str, states: Sequence[node_status_pb2.NodeState]
    ) -> None:
        records.check_id(strategy_id)
        records.check_node_states(states)
        async with self._lock:
            if strategy_id not in self._records:
                raise StrategyNotFoundError(strategy_id)
            nodes = self._nodes.setdefault(strategy_id, {})
            for state in states:
                nodes[state.node_id] = state.SerializeToString()

    async def node_states(self, strategy_id: str) -> builtins.list[node_status_pb2.NodeState]:
        nodes = self._nodes.get(strategy_id, {})
        return [node_status_pb2.NodeState.FromString(nodes[node_id]) for node_id in sorted(nodes)]

    async def events(
        self,
        *,
        strategy_id: str = "",
        types: Collection[str] = (),
        since: float | None = None,
        limit: int,
        cursor: str = "",
    ) -> tuple[builtins.list[event_pb2.Event], str]:
        records.check_limit(limit)
        after = cursors.events_position(strategy_id, types, since, cursor)
        wanted = frozenset(types)
        log = self._strategy_logs.get(strategy_id, ()) if strategy_id else self._log
        found: builtins.list[tuple[int, event_pb2.Event]] = []
        for seq, raw in log:
            if seq <= after:
                continue
            event = event_pb2.Event.FromString(raw)
            if records.event_matches(event, wanted, since):
                found.append((seq, event))
                if len(found) > limit:
                    break
        if len(found) <= limit:
            return [event for _, event in found], ""
        page = found[:limit]
        return [event for _, event in page], cursors.events_cursor(
            strategy_id, types, since, page[-1][0]
        )

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
