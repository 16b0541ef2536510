"""InMemoryGraphStore: the embedded GraphStore, for a single DAG Manager and for tests.

Every method checks all of its input against the current graph before changing anything and
never awaits in between, so under asyncio each call is one atomic step, as a Neo4j
transaction is. The tag index maps each tag to its nodes, like the (:Tag)<-[:TAGGED]- edges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from qmtl.common.v1 import match_mode_pb2

from .errors import MissingDependencyError, TopicConflictError, UnknownNodeError
from .model import (
    NOT_STORED,
    Applied,
    DiffSnapshot,
    GraphChanges,
    NodeWrite,
    Orphan,
    StoredNode,
    StrategyRefs,
    TaggedQueue,
)
from .outbox import (
    DEFAULT_OUTBOX_PAGE,
    AnswerAnnouncement,
    DeleteAnnouncements,
    OutboxEntry,
    OutboxMessage,
    check_announcements,
    check_message,
    check_page,
)
from .port import MatchMode
from .validation import (
    check_batch,
    check_changes,
    check_ids,
    check_interval,
    check_key,
    check_refs,
)


@dataclass(slots=True)
class _Node:
    spec: NodeWrite  # identity fields and topic as created; tags/schema_hash/is_global below
    tags: set[str]
    schema_hash: str
    is_global: bool
    created_at: float
    strategies: set[str] = field(default_factory=set)
    orphaned_since: float | None = None
    # Bumped by every write that changes tags, schema_hash or is_global: a snapshot records
    # the sum over its strategy's nodes and holds only while the sum does.
    rev: int = 0

    def stored(self) -> StoredNode:
        s = self.spec
        return StoredNode(
            node_id=s.node_id,
            node_type=s.node_type,
            topic=s.topic,
            interval=s.interval,
            period=s.period,
            tags=tuple(sorted(self.tags)),
            dependencies=s.dependencies,
            code_hash=s.code_hash,
            schema_compat_id=s.schema_compat_id,
            schema_hash=self.schema_hash,
            params_canon=s.params_canon,
            is_global=self.is_global,
            created_at=self.created_at,
            ref_count=len(self.strategies),
            orphaned_since=self.orphaned_since,
            rev=self.rev,
        )


@dataclass(frozen=True, slots=True)
class _Snapshot:
    snapshot: DiffSnapshot
    count: int  # nodes the strategy used when it was recorded
    revs: int  # the sum of their revs then


class InMemoryGraphStore:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._nodes: dict[str, _Node] = {}
        self._topics: dict[str, str] = {}  # topic -> node_id
        self._by_tag: dict[str, set[str]] = {}
        self._strategies: dict[str, set[str]] = {}  # strategy_id -> node ids
        self._answers: dict[str, tuple[int, str]] = {}  # tag-query key -> (version, etag)
        self._snapshots: dict[str, _Snapshot] = {}  # strategy_id -> its last diff's answer
        self._outbox: dict[str, OutboxEntry] = {}  # id -> entry, in write order

    async def apply(self, changes: GraphChanges) -> Applied:
        check_changes(changes)
        written = {node.node_id for node in changes.nodes}
        for index, node in enumerate(changes.nodes):
            for dep in node.dependencies:
                if dep not in written and dep not in self._nodes:
                    raise MissingDependencyError(
                        f"unknown dependency {dep}", field=f"nodes[{index}].dependencies"
                    )
            owner = self._topics.get(node.topic)
            if node.node_id not in self._nodes and owner is not None:
                raise TopicConflictError(
                    f"topic {node.topic} belongs to node {owner}", field=f"nodes[{index}].topic"
                )
        if changes.refs is not None:
            self._check_known(changes.refs, written, "refs.")
        keep_snapshot = changes.snapshot is not None and self._still_seen(changes.snapshot)
        # Everything is checked; from here on nothing can fail.
        now = self._clock()
        topics: dict[str, str] = {}
        created: list[str] = []
        for node in changes.nodes:
            record = self._nodes.get(node.node_id)
            if record is None:
                record = _Node(
                    spec=node,
                    tags=set(),
                    schema_hash=node.schema_hash,
                    is_global=node.is_global,
                    created_at=now,
                    orphaned_since=now,
                )
                self._nodes[node.node_id] = record
                self._topics[node.topic] = node.node_id
                created.append(node.node_id)
            elif (
                record.schema_hash != node.schema_hash
                or record.is_global != node.is_global
                or not record.tags.issuperset(node.tags)
            ):
                record.schema_hash = node.schema_hash
                record.is_global = node.is_global
                record.rev += 1
            for tag in node.tags:
                record.tags.add(tag)
                self._by_tag.setdefault(tag, set()).add(node.node_id)
            topics[node.node_id] = record.spec.topic
        if changes.refs is not None:
            strategy_id = changes.refs.strategy_id
            self._add_refs(strategy_id, changes.refs.node_ids)
            self._snapshots.pop(strategy_id, None)
            if changes.snapshot is not None and keep_snapshot:
                count, revs = self._fingerprint(strategy_id)
                self._snapshots[strategy_id] = _Snapshot(changes.snapshot, count, revs)
        return Applied(topics=topics, created=tuple(created))

    async def snapshot(self, strategy_id: str, key: str) -> bytes | None:
        recorded = self._snapshots.get(strategy_id)
        if recorded is None or recorded.snapshot.key != key:
            return None
        if self._fingerprint(strategy_id) != (recorded.count, recorded.revs):
            return None
        return recorded.snapshot.payload

    def _still_seen(self, snapshot: DiffSnapshot) -> bool:
        for node_id, rev in snapshot.seen.items():
            record = self._nodes.get(node_id)
            if (NOT_STORED if record is None else record.rev) != rev:
                return False
        return True

    def _fingerprint(self, strategy_id: str) -> tuple[int, int]:
        members = self._strategies.get(strategy_id, set())
        return len(members), sum(self._nodes[nid].rev for nid in members)

    async def get_nodes(self, node_ids: Sequence[str]) -> dict[str, StoredNode]:
        check_ids("node_ids", node_ids)
        return {nid: self._nodes[nid].stored() for nid in node_ids if nid in self._nodes}

    async def queues_by_tags(
        self, tags: Sequence[str], interval: int, match_mode: MatchMode
    ) -> list[TaggedQueue]:
        check_ids("tags", tags)
        check_interval(interval)
        wanted = set(tags)
        if not wanted:
            return []
        sets = [self._by_tag.get(tag, set()) for tag in wanted]
        if match_mode == match_mode_pb2.MATCH_MODE_ALL:
            matched = set.intersection(*sets)
        else:
            matched = set.union(*sets)
        answer = []
        for nid in matched:
            record = self._nodes[nid]
            if interval and record.spec.interval != interval:
                continue
            answer.append(
                TaggedQueue(
                    topic=record.spec.topic,
                    node_id=nid,
                    interval=record.spec.interval,
                    tags=tuple(sorted(record.tags)),
                    is_global=record.is_global,
                )
            )
        return sorted(answer, key=lambda q: q.topic)

    async def add_strategy_refs(self, strategy_id: str, node_ids: Sequence[str]) -> None:
        refs = StrategyRefs(strategy_id, tuple(node_ids))
        check_refs(refs, "")
        self._check_known(refs, set(), "")
        self._add_refs(strategy_id, refs.node_ids)

    async def release_strategy(self, strategy_id: str) -> list[str]:
        now = self._clock()
        self._snapshots.pop(strategy_id, None)
        orphaned = []
        for nid in self._strategies.pop(strategy_id, set()):
            record = self._nodes.get(nid)
            if record is None:
                continue
            record.strategies.discard(strategy_id)
            if not record.strategies:
                record.orphaned_since = now
                orphaned.append(nid)
        return sorted(orphaned)

    async def orphans(self, older_than: float, limit: int = 1000) -> list[Orphan]:
        check_batch("limit", limit)
        cutoff = self._clock() - older_than
        found = [
            Orphan(
                topic=r.spec.topic,
                node_id=nid,
                node_type=r.spec.node_type,
                interval=r.spec.interval,
                tags=tuple(sorted(r.tags)),
                created_at=r.created_at,
                orphaned_since=r.orphaned_since,
            )
            for nid, r in self._nodes.items()
            if r.orphaned_since is not None and r.orphaned_since <= cutoff
        ]
        found.sort(key=lambda o: (o.orphaned_since, o.node_id))
        return found[:limit]

    async def delete_queues(
        self, topics: Sequence[str], *, announce: DeleteAnnouncements | None = None
    ) -> list[str]:
        check_ids("topics", topics)
        check_announcements(announce)
        deleted = []
        for topic in topics:
            nid = self._topics.get(topic)
            if nid is None or self._nodes[nid].strategies:
                continue
            record = self._nodes.pop(nid)
            del self._topics[topic]
            for tag in record.tags:
                members = self._by_tag[tag]
                members.discard(nid)
                if not members:
                    del self._by_tag[tag]
            deleted.append(topic)
            if announce is not None and topic in announce:
                self._enqueue(announce[topic])
        return deleted

    async def record_answer(
        self, key: str, etag: str, *, announce: AnswerAnnouncement | None = None
    ) -> tuple[int, bool]:
        check_key(key)
        known = self._answers.get(key)
        if known is not None and known[1] == etag:
            return known[0], False
        version = (known[0] if known is not None else 0) + 1
        message = announce(version) if announce is not None else None
        if message is not None:
            check_message(message, "announce")
            self._enqueue(message)
        self._answers[key] = (version, etag)
        return version, True

    async def outbox_pending(self, limit: int = DEFAULT_OUTBOX_PAGE) -> list[OutboxEntry]:
        check_page(limit)
        return list(self._outbox.values())[:limit]

    async def outbox_ack(self, ids: Sequence[str]) -> int:
        check_ids("ids", ids)
        return sum(self._outbox.pop(i, None) is not None for i in set(ids))

    def _enqueue(self, message: OutboxMessage) -> None:
        # An id already waiting keeps its first entry (Neo4j's MERGE on the unique id does too).
        if message.id not in self._outbox:
            self._outbox[message.id] = OutboxEntry(
                message.id, message.topic, message.payload, self._clock()
            )

    async def aclose(self) -> None:
        return None

    def _check_known(self, refs: StrategyRefs, written: set[str], prefix: str) -> None:
        for index, nid in enumerate(refs.node_ids):
            if nid not in written and nid not in self._nodes:
                raise UnknownNodeError(f"unknown node {nid}", field=f"{prefix}node_ids[{index}]")

    def _add_refs(self, strategy_id: str, node_ids: Sequence[str]) -> None:
        members = self._strategies.setdefault(strategy_id, set())
        for nid in node_ids:
            record = self._nodes[nid]
            record.strategies.add(strategy_id)
            record.orphaned_since = None
            members.add(nid)
