"""RedisStrategyStore: the Gateway's state in Redis, shared by every Gateway instance.

Every write is one Lua script (lua/), so one round trip and atomic: the state change, its
outbox entries (qmtl.runtime.outbox.redis_store) and its event-log entries happen together or
not at all. Keys under the prefix (default `qmtl:gateway:`; docs/operations/gateway-state.md):

    strategy:<id>          hash: record (qmtl.dag.v1.Strategy bytes), state, version, token
    dag:<dag_hash>         string: the strategy id holding that DAG
    idem:<key>             hash: strategy_id, fingerprint, expires (ms); TTL 24 h
    list:all               zset: strategy id, score = created_at in ms
    list:state:<n>         zset: the same, one per StrategyState
    nodes:<id>             hash: node id -> qmtl.dag.v1.NodeState bytes
    events:seq             counter of the event log's sequence numbers
    events:log             zset: the global event log (capped), score = sequence number,
                           member = the number as 16 hex digits + qmtl.events.v1.Event bytes
    events:strategy:<id>   zset: the same, that strategy's events only (capped)
    outbox:order|seq|entries   the transactional outbox (RedisOutbox)

Read-modify-write (transition, attach_work_item) reads the record in Python, builds the new
one, and writes it with a script that checks the version read is still current (optimistic
compare-and-set), retrying on a concurrent write. Times come from the store's clock.
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any, cast

import redis.asyncio as redis
from redis.commands.core import AsyncScript

from qmtl.common.v1 import error_pb2
from qmtl.dag.v1 import diff_result_pb2, node_status_pb2, strategy_pb2
from qmtl.events.v1 import event_pb2
from qmtl.runtime.outbox.redis_store import RedisOutbox, outbox_argv
from qmtl.runtime.workqueue.redis_calls import client_for_url

from . import cursors, records
from .errors import (
    IdempotencyConflictError,
    InvalidStateError,
    StrategyIdTakenError,
    StrategyNotFoundError,
    StrategyStoreError,
    StrategyStoreUnavailableError,
)
from .port import (
    DEFAULT_EVENT_LOG_CAP,
    DEFAULT_PREFIX,
    DEFAULT_STRATEGY_EVENT_LOG_CAP,
    IDEMPOTENCY_TTL_SECONDS,
    Announcement,
    Clock,
    Created,
    Outcome,
)
from .redis_calls import bounded
from .redis_scripts import StoreScripts

DEFAULT_CALL_TIMEOUT = 5.0
# Compare-and-set rounds a transition makes while other writers keep changing the record
# (attach_work_item, a concurrent transition); past this it gives up, retryable.
MAX_CAS_ATTEMPTS = 16
# Log entries read per round trip while events() filters its way to a full page.
_EVENTS_SCAN = 500
_SEQ_DIGITS = 16
# Builds the new record (and its state) from the current one and the store's time in ms.
_Change = Callable[[strategy_pb2.Strategy, int], tuple[strategy_pb2.Strategy, int]]


class RedisStrategyStore:
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Clock = time.time,
        event_log_cap: int = DEFAULT_EVENT_LOG_CAP,
        strategy_event_log_cap: int = DEFAULT_STRATEGY_EVENT_LOG_CAP,
        idempotency_ttl: float = IDEMPOTENCY_TTL_SECONDS,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        owns_client: bool = False,
    ) -> None:
        """`client` must return bytes (decode_responses=False): records are binary protobuf."""
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RedisStrategyStore needs a client with decode_responses=False")
        if not prefix:
            raise ValueError("the key prefix must not be empty")
        if event_log_cap < 1 or strategy_event_log_cap < 1:
            raise ValueError("event log caps must be at least 1")
        self._client = client
        self._owns_client = owns_client
        self.prefix = prefix
        self._clock = clock
        self._caps = (str(event_log_cap), str(strategy_event_log_cap))
        self._idempotency_ttl_ms = records.to_ms(idempotency_ttl)
        self._timeout = call_timeout
        self._scripts = StoreScripts.register(client)
        self.outbox = RedisOutbox(client, prefix, call_timeout=call_timeout)
        outbox = self.outbox.keys
        self._outbox_keys = [outbox.order, outbox.seq, outbox.entries]

    @classmethod
    def from_url(
        cls, url: str, *, call_timeout: float = DEFAULT_CALL_TIMEOUT, **kwargs: Any
    ) -> RedisStrategyStore:
        client = client_for_url(url, call_timeout)
        return cls(client, call_timeout=call_timeout, owns_client=True, **kwargs)

    # -- keys ----------------------------------------------------------------------------------

    def _strategy_key(self, strategy_id: str) -> str:
        return f"{self.prefix}strategy:{strategy_id}"

    def _listing_key(self, state: int) -> str:
        return f"{self.prefix}list:state:{state}" if state else f"{self.prefix}list:all"

    def _nodes_key(self, strategy_id: str) -> str:
        return f"{self.prefix}nodes:{strategy_id}"

    def _log_key(self, strategy_id: str) -> str:
        if strategy_id:
            return f"{self.prefix}events:strategy:{strategy_id}"
        return f"{self.prefix}events:log"

    def _announce_keys(self, strategy_id: str) -> list[str]:
        return [
            *self._outbox_keys,
            f"{self.prefix}events:seq",
            self._log_key(""),
            self._log_key(strategy_id),
        ]

    async def _run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await bounded(script(keys=keys, args=[self.prefix, *args]), self._timeout)

    def _now_ms(self) -> int:
        return records.to_ms(self._clock())

    # -- writes --------------------------------------------------------------------------------

    async def create(
        self,
        strategy: strategy_pb2.Strategy,
        *,
        idempotency_key: str,
        fingerprint: str,
        events: Sequence[Announcement],
    ) -> Created:
        now_ms = self._now_ms()
        record = records.new_record(
            strategy,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            events=events,
            now_ms=now_ms,
        )
        raw = record.SerializeToString()
        records.check_record_size(raw)
        strategy_id = record.strategy_id
        keys = [
            self._strategy_key(strategy_id),
            f"{self.prefix}dag:{record.dag_hash}",
            f"{self.prefix}idem:{idempotency_key}",
            self._listing_key(0),
            self._listing_key(record.state),
            *self._announce_keys(strategy_id),
        ]
        args: list[Any] = [
            strategy_id,
            raw,
            record.state,
            now_ms,
            "1" if idempotency_key else "",
            fingerprint,
            now_ms,
            self._idempotency_ttl_ms,
            *self._caps,
            len(events),
            *_event_args(events),
        ]
        reply = await self._run(self._scripts.create, keys, args)
        answer = reply[0].decode()
        if answer == "created":
            return Created(record, "created")
        if answer == "conflict":
            raise IdempotencyConflictError(idempotency_key, reply[1].decode())
        if answer == "taken":
            raise StrategyIdTakenError(
                f"strategy id {strategy_id!r} is taken", field="strategy.strategy_id"
            )
        found = strategy_pb2.Strategy.FromString(reply[1])
        # Our own record found again means the script ran before and this is redis-py
        # repeating the call after a lost reply: it was created, by this call.
        if found.strategy_id == strategy_id:
            return Created(found, "created")
        outcome: Outcome = "replayed" if answer == "replayed" else "duplicate"
        return Created(found, outcome)

    async def attach_work_item(self, strategy_id: str, work_item_id: str) -> strategy_pb2.Strategy:
        records.check_id(strategy_id)
        records.check_work_item(work_item_id)
        return await self._update(
            strategy_id,
            None,
            lambda current, now_ms: (
                records.with_work_item(current, work_item_id, now_ms),
                current.state,
            ),
            (),
        )

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
        return await self._update(
            strategy_id,
            (expected, to),
            lambda current, now_ms: (
                records.transitioned(current, to=to, diff=diff, error=error, now_ms=now_ms),
                to,
            ),
            events,
        )

    async def _update(
        self,
        strategy_id: str,
        check: tuple[frozenset[int], int] | None,
        change: _Change,
        events: Sequence[Announcement],
    ) -> strategy_pb2.Strategy:
        """Compare-and-set: read the record and its version, build the new record, write it if
        the version is unchanged (and, for a transition, the state is expected)."""
        key = self._strategy_key(strategy_id)
        expected = "" if check is None else "," + ",".join(map(str, sorted(check[0]))) + ","
        token = uuid.uuid4().hex
        event_args = _event_args(events)
        for _ in range(MAX_CAS_ATTEMPTS):
            fields = await bounded(self._client.hmget(key, ["record", "version"]), self._timeout)
            raw, version = cast(list[bytes | None], fields)
            if raw is None:
                raise StrategyNotFoundError(strategy_id)
            current = strategy_pb2.Strategy.FromString(raw)
            if check is not None and current.state not in check[0]:
                raise InvalidStateError(
                    current.state, strategy_id=strategy_id, expected=check[0], to=check[1]
                )
            record, new_state = change(current, self._now_ms())
            new_raw = record.SerializeToString()
            records.check_record_size(new_raw)
            keys = [
                key,
                self._listing_key(current.state),
                self._listing_key(new_state),
                *self._announce_keys(strategy_id),
            ]
            args: list[Any] = [
                strategy_id,
                version,
                expected,
                new_state,
                new_raw,
                records.ms_of(record.created_at),
                token,
                *self._caps,
                len(events),
                *event_args,
            ]
            reply = await self._run(self._scripts.update, keys, args)
            answer = reply[0].decode()
            if answer in ("ok", "done"):
                return record
            if answer == "missing":
                raise StrategyNotFoundError(strategy_id)
            if answer == "state" and check is not None:
                raise InvalidStateError(
                    int(reply[1]), strategy_id=strategy_id, expected=check[0], to=check[1]
                )
        raise StrategyStoreUnavailableError(
            f"strategy {strategy_id!r} kept changing under {MAX_CAS_ATTEMPTS} attempts to update it"
        )

    async def report_node_states(
        self, strategy_id: str, states: Sequence[node_status_pb2.NodeState]
    ) -> None:
        records.check_id(strategy_id)
        records.check_node_states(states)
        if not states:
            if await self.get(strategy_id) is None:
                raise StrategyNotFoundError(strategy_id)
            return
        args: list[Any] = []
        for state in states:
            args += (state.node_id, state.SerializeToString())
        keys = [self._strategy_key(strategy_id), self._nodes_key(strategy_id)]
        if not await self._run(self._scripts.report_nodes, keys, args):
            raise StrategyNotFoundError(strategy_id)

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, strategy_id: str) -> strategy_pb2.Strategy | None:
        if not strategy_id:
            return None
        call = self._client.hget(self._strategy_key(strategy_id), "record")
        raw = await bounded(call, self._timeout)
        return None if raw is None else strategy_pb2.Strategy.FromString(cast(bytes, raw))

    async def list(
        self, *, state: int = 0, limit: int, cursor: str = ""
    ) -> tuple[builtins.list[strategy_pb2.Strategy], str]:
        records.check_limit(limit)
        if state:
            records.check_state(state, "state")
        after = cursors.list_position(state, cursor)
        position: list[Any] = ["", "", ""] if after is None else ["1", after[0], after[1]]
        reply = await self._run(
            self._scripts.list, [self._listing_key(state)], [limit + 1, *position]
        )
        page = [strategy_pb2.Strategy.FromString(raw) for raw in reply]
        if len(page) <= limit:
            return page, ""
        page = page[:limit]
        last = page[-1]
        return page, cursors.list_cursor(state, records.ms_of(last.created_at), last.strategy_id)

    async def node_states(self, strategy_id: str) -> builtins.list[node_status_pb2.NodeState]:
        if not strategy_id:
            return []
        call = self._client.hgetall(self._nodes_key(strategy_id))
        stored = cast(dict[bytes, bytes], await bounded(call, self._timeout))
        return [node_status_pb2.NodeState.FromString(stored[k]) for k in sorted(stored)]

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
        key = self._log_key(strategy_id)
        found: builtins.list[tuple[int, event_pb2.Event]] = []
        scan = max(_EVENTS_SCAN, limit + 1)
        while len(found) <= limit:
            call = self._client.zrangebyscore(key, f"({after}", "+inf", start=0, num=scan)
            members = cast(builtins.list[bytes], await bounded(call, self._timeout))
            for member in members:
                after = int(member[:_SEQ_DIGITS], 16)
                event = _decode_event(member[_SEQ_DIGITS:])
                if records.event_matches(event, wanted, since):
                    found.append((after, event))
                    if len(found) > limit:
                        break
            if len(members) < scan:
                break
        if len(found) <= limit:
            return [event for _, event in found], ""
        page = found[:limit]
        return [event for _, event in page], cursors.events_cursor(
            strategy_id, types, since, page[-1][0]
        )

    async def ping(self) -> None:
        await bounded(self._client.ping(), self._timeout)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _event_args(events: Sequence[Announcement]) -> list[Any]:
    args: list[Any] = []
    for topic, event in events:
        args += outbox_argv(topic, event)
    return args


def _decode_event(raw: bytes) -> event_pb2.Event:
    try:
        return event_pb2.Event.FromString(raw)
    except Exception as exc:  # DecodeError: only a damaged log entry gets here
        raise StrategyStoreError(f"an event-log entry does not decode: {exc}") from exc
