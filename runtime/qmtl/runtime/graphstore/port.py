"""The GraphStore port: what the DAG Manager needs from the global DAG's storage.

Adapters: `InMemoryGraphStore` (the embedded default) and `neo4j.Neo4jGraphStore`; the contract
suite in tests/contract/test_graphstore_contract.py holds each to the same behaviour. Every
method is one transaction, shaped so the Neo4j adapter can run it as a few parameterised
`UNWIND $rows` statements inside one explicit transaction.

Guarantees every adapter keeps:
- `apply` is all or nothing: if it raises, the graph is exactly as before;
- a node keeps the queue it was created with: re-applying it (the same DAG again, after a
  restart, from another DAG Manager instance, or racing one) never rebinds it;
- tags only grow (a node's tags are the union of what was ever applied for it), because tags
  are not part of node identity and two strategies may tag one node differently;
- a node's reference count is the number of distinct strategies using it; a node with count
  0 is an orphan, timed from the moment it became one (or was created unreferenced), and
  referencing it again makes it a non-orphan at once;
- `delete_queues` deletes only what is still an orphan when it runs, so a queue referenced
  again between `orphans()` and the delete (the GC grace) survives.
Limits (`MAX_BATCH`) and the error codes are in docs/operations/graph-store.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeAlias

from qmtl.common.v1 import match_mode_pb2

from .model import Applied, GraphChanges, Orphan, StoredNode, TaggedQueue
from .outbox import DEFAULT_OUTBOX_PAGE, AnswerAnnouncement, DeleteAnnouncements, OutboxEntry

MatchMode: TypeAlias = match_mode_pb2.MatchMode.ValueType


class GraphStore(Protocol):
    async def apply(self, changes: GraphChanges) -> Applied:
        """Writes `changes.nodes` (MERGE by node_id), then `changes.refs` and the strategy's
        snapshot (`changes.snapshot` if every rev it `seen` still holds before the writes,
        else none), atomically.

        Raises InvalidGraphInputError (malformed or duplicated entries), GraphBatchTooLargeError,
        MissingDependencyError (a dependency neither stored nor in `nodes`),
        TopicConflictError (a new node's topic belongs to another node) and UnknownNodeError
        (a ref to a node neither stored nor in `nodes`); in every case nothing is written.
        """
        ...

    async def get_nodes(self, node_ids: Sequence[str]) -> dict[str, StoredNode]:
        """The stored nodes among `node_ids`, by id; unknown ids are simply absent."""
        ...

    async def queues_by_tags(
        self, tags: Sequence[str], interval: int, match_mode: MatchMode
    ) -> list[TaggedQueue]:
        """Queues of nodes carrying any (MATCH_MODE_ANY, also for UNSPECIFIED) or all
        (MATCH_MODE_ALL) of `tags`, with that `interval` (0 = any interval), sorted by topic.
        No tags means no queues. Orphans are included: they still exist until GC drops them."""
        ...

    async def snapshot(self, strategy_id: str, key: str) -> bytes | None:
        """The payload of the snapshot the strategy's last `apply` recorded, if its key is
        `key` and what it answered for still holds: the strategy uses exactly the nodes it
        used then (refs only grow until a release, which drops the snapshot) and none of them
        has been rewritten since (new tags, schema_hash or is_global, by any strategy).
        Otherwise, or for an unknown strategy, None."""
        ...

    async def add_strategy_refs(self, strategy_id: str, node_ids: Sequence[str]) -> None:
        """`strategy_id` now uses `node_ids` (idempotent); UnknownNodeError, adding nothing,
        if any is not stored."""
        ...

    async def release_strategy(self, strategy_id: str) -> list[str]:
        """Drops every reference of `strategy_id`; returns the ids (sorted) of the nodes this
        made orphans. An unknown or already released strategy returns []."""
        ...

    async def orphans(self, older_than: float, limit: int = 1000) -> list[Orphan]:
        """Up to `limit` orphans that have been orphans for at least `older_than` seconds,
        longest-orphaned first."""
        ...

    async def delete_queues(
        self, topics: Sequence[str], *, announce: DeleteAnnouncements | None = None
    ) -> list[str]:
        """Deletes each topic's queue and node if the node is still an orphan; returns the
        topics deleted, in the order given. Unknown and referenced topics are left alone.
        `announce[topic]`, if given, goes into the outbox in the same transaction, for the
        topics deleted only (outbox.py; a malformed message raises before anything changes)."""
        ...

    async def record_answer(
        self, key: str, etag: str, *, announce: AnswerAnnouncement | None = None
    ) -> tuple[int, bool]:
        """Versions the answer of one tag query (`key` names the query): if `etag` differs
        from the one stored for `key`, the version goes up by one and `etag` is stored.
        Returns (version, changed); the first call for a key returns (1, True). Atomic, so two
        DAG Managers recording the same new answer bump the version once.
        When the answer changed, `announce(version)`'s message (if not None) goes into the
        outbox in the same transaction. InvalidGraphInputError for an empty key; a malformed
        message raises and records nothing."""
        ...

    async def outbox_pending(self, limit: int = DEFAULT_OUTBOX_PAGE) -> list[OutboxEntry]:
        """Up to `limit` (1..MAX_BATCH) unacknowledged outbox entries, oldest first."""
        ...

    async def outbox_ack(self, ids: Sequence[str]) -> int:
        """Removes the entries `ids` from the outbox (they were published); unknown ids are
        ignored, so a second ack is harmless. Returns how many were removed."""
        ...

    async def aclose(self) -> None: ...
