"""The StrategyStore port: the Gateway's state (strategies, node states, its event log).

The Gateway holds no state of its own (NG-7): every instance reads and writes here, so any
instance can answer for a strategy another one accepted. Each write is atomic with the events
it announces: they go to the transactional outbox (relayed to Kafka by qmtl.runtime.outbox)
AND to the event log `events()` serves, in the same step as the state change, so a crash can
never leave a change unannounced. Adapters: memory.MemoryStrategyStore (embedded default) and
redis_store.RedisStrategyStore; one contract suite covers both
(tests/gateway/contract/test_strategy_store_contract.py). docs/operations/gateway-state.md.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from qmtl.common.v1 import error_pb2
from qmtl.dag.v1 import diff_result_pb2, node_status_pb2, strategy_pb2
from qmtl.events.v1 import event_pb2
from qmtl.runtime.outbox import OutboxStore

# Epoch seconds; injectable so tests move time by hand (created_at, updated_at, key expiry).
Clock = Callable[[], float]

DEFAULT_PREFIX = "qmtl:gateway:"
# The global event log keeps the newest this many events; each strategy's own log the newest
# DEFAULT_STRATEGY_EVENT_LOG_CAP of its events. Older ones are trimmed in the write that
# appends past the cap (the outbox, which Kafka is fed from, is not capped).
DEFAULT_EVENT_LOG_CAP = 10_000
DEFAULT_STRATEGY_EVENT_LOG_CAP = 1_000
# How long an idempotency key answers a repeated submission with its first strategy.
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
MAX_IDEMPOTENCY_KEY_LENGTH = 1_024
# A serialized Strategy record (DAG + diff result): the DAG arrives in a request body of at
# most 16 MiB (docs/operations/limits.md); the diff result adds a queue map of the same nodes.
# The bound keeps one Redis value (and one script argument) far below Redis's 512 MB.
MAX_STRATEGY_BYTES = 32 * 1024 * 1024
# Page sizes of list() and events().
MAX_PAGE = 1_000
# Events one write may announce, and node states one report may carry (a DAG's node bound).
MAX_EVENTS_PER_WRITE = 100
MAX_NODE_STATES_PER_REPORT = 10_000

Outcome = Literal["created", "replayed", "duplicate"]
# (topic, event): an event to announce on an event-bus topic with a write.
Announcement = tuple[str, event_pb2.Event]


@dataclass(frozen=True, slots=True)
class Created:
    """What `create` did.

    created: stored now. replayed: the same idempotency key with the same fingerprint was seen
    before (`strategy` is the first one, as stored now). duplicate: another strategy already
    has this dag_hash (`strategy` is it). Only "created" wrote anything."""

    strategy: strategy_pb2.Strategy
    outcome: Outcome


class StrategyStore(Protocol):
    @property
    def outbox(self) -> OutboxStore:
        """The outbox the writes fill, for the relay (OutboxRelay(store.outbox, bus))."""
        ...

    async def create(
        self,
        strategy: strategy_pb2.Strategy,
        *,
        idempotency_key: str,
        fingerprint: str,
        events: Sequence[Announcement],
    ) -> Created:
        """Stores `strategy` (its strategy_id, dag_hash and state set by the caller; created_at
        and updated_at set by the store) unless the idempotency key or the dag_hash already
        names one. Atomic. `idempotency_key` "" means none; the same key with another
        fingerprint raises IdempotencyConflictError. `events` are written to the outbox and the
        event log only when the outcome is "created"."""
        ...

    async def get(self, strategy_id: str) -> strategy_pb2.Strategy | None: ...

    async def list(
        self, *, state: int = 0, limit: int, cursor: str = ""
    ) -> tuple[builtins.list[strategy_pb2.Strategy], str]:
        """Newest first (created_at, then strategy_id, both descending); `state` 0 means all.
        Returns the page and the cursor of the next one ("" when there is none)."""
        ...

    async def attach_work_item(self, strategy_id: str, work_item_id: str) -> strategy_pb2.Strategy:
        """Records the work item that processes the strategy; sets updated_at."""
        ...

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
        """Atomic compare-and-set of the state: InvalidStateError(current) when the state is not
        in `expect`, StrategyNotFoundError for an unknown id. Sets updated_at, the diff when
        given (kept otherwise), the error when given (cleared otherwise), and writes `events`
        to the outbox and the event log in the same step."""
        ...

    async def report_node_states(
        self, strategy_id: str, states: Sequence[node_status_pb2.NodeState]
    ) -> None:
        """Upserts by node_id (the last one wins within a call); StrategyNotFoundError for an
        unknown strategy."""
        ...

    async def node_states(self, strategy_id: str) -> builtins.list[node_status_pb2.NodeState]:
        """The strategy's node states ordered by node_id; [] when none (or no such strategy)."""
        ...

    async def events(
        self,
        *,
        strategy_id: str = "",
        types: Collection[str] = (),
        since: float | None = None,
        limit: int,
        cursor: str = "",
    ) -> tuple[builtins.list[event_pb2.Event], str]:
        """The event log, oldest first: all events, or one strategy's; only `types` when given;
        only events whose Event.time is at or after `since` (epoch seconds) when given."""
        ...

    async def ping(self) -> None:
        """Returns when the backend answers; StrategyStoreUnavailableError otherwise."""
        ...

    async def aclose(self) -> None: ...
