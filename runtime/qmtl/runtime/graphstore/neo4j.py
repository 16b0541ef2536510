"""Neo4jGraphStore: the GraphStore on Neo4j 5, for several DAG Managers sharing one graph.

Each call is one explicit transaction (neo4j_tx.transact, retried when transient). `apply`
first write-locks the stored nodes it will change, reads what its checks need, raises the
port's typed errors before writing anything, then writes in a few `UNWIND $rows` statements.
Concurrent writers are handled by the locks and, for nodes and topics that do not exist yet,
by the unique constraints of the migrations: the loser's CREATE fails, and its retry re-reads
the graph (reusing the node the winner created, or raising TopicConflictError for a topic the
winner took). The graph must be at migration head (`qmtl migrate`); the DAG Manager's boot
check says so. Statements are in neo4j_cypher.py; docs/operations/graph-store.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from neo4j import AsyncDriver, AsyncGraphDatabase, AsyncTransaction
from neo4j.exceptions import AuthError, ConfigurationError, DriverError, Neo4jError

from qmtl.common.v1 import match_mode_pb2
from qmtl.runtime.graph_migrations.steps import GraphNames

from .errors import (
    GraphStoreUnavailableError,
    MissingDependencyError,
    TopicConflictError,
    UnknownNodeError,
)
from .model import (
    NOT_STORED,
    Applied,
    GraphChanges,
    NodeWrite,
    Orphan,
    StoredNode,
    StrategyRefs,
    TaggedQueue,
)
from .neo4j_cypher import statements
from .neo4j_tx import RetryPolicy, T, Work, run, run_rows, transact
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

DEFAULT_NAMES = GraphNames()  # the plain labels of production
DEFAULT_RETRY = RetryPolicy()


def _props(node: NodeWrite) -> dict[str, Any]:
    return {
        "node_id": node.node_id,
        "node_type": node.node_type,
        "interval": node.interval,
        "period": node.period,
        "code_hash": node.code_hash,
        "schema_compat_id": node.schema_compat_id,
        "schema_hash": node.schema_hash,
        "params_canon": node.params_canon,
        "global": node.is_global,
        "tags": sorted(set(node.tags)),
        "dependencies": list(node.dependencies),
    }


def _stored(row: list[Any]) -> StoredNode:
    """A row of neo4j_cypher._STORED_ROW."""
    (node_id, node_type, topic, interval, period, tags, deps, code_hash, compat, schema_hash,
     params, is_global, created_at, refs, orphaned_since, rev) = row  # fmt: skip
    return StoredNode(
        node_id=str(node_id),
        node_type=str(node_type),
        topic=str(topic),
        interval=int(interval),
        period=int(period),
        tags=tuple(sorted(tags or ())),
        dependencies=tuple(deps or ()),
        code_hash=str(code_hash),
        schema_compat_id=str(compat),
        schema_hash=str(schema_hash),
        params_canon=str(params),
        is_global=bool(is_global),
        created_at=float(created_at),
        ref_count=int(refs),
        orphaned_since=None if orphaned_since is None else float(orphaned_since),
        rev=int(rev),
    )


class _Current(NamedTuple):
    """What apply needs to know of a stored node: its queue and the fields a write may change."""

    topic: str
    tags: tuple[str, ...]
    schema_hash: str
    is_global: bool
    rev: int


class Neo4jGraphStore:
    def __init__(
        self,
        driver: AsyncDriver,
        *,
        names: GraphNames = DEFAULT_NAMES,
        clock: Callable[[], float] = time.time,
        database: str | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        """Uses `driver` without owning it: aclose() leaves it open (see `connect`)."""
        self._driver = driver
        self._names = names
        self._clock = clock
        self._database = database
        self._retry = retry
        self._q = statements(names)
        self._owns_driver = False

    @classmethod
    async def connect(
        cls,
        uri: str,
        user: str,
        password: str,
        *,
        names: GraphNames = DEFAULT_NAMES,
        clock: Callable[[], float] = time.time,
        database: str | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> Neo4jGraphStore:
        """Opens a driver of its own, checks the server answers, and closes it in aclose()."""
        try:
            driver = AsyncGraphDatabase.driver(uri, auth=(user, password))
        except (ConfigurationError, ValueError) as exc:
            raise GraphStoreUnavailableError(
                f"not a Neo4j URI {uri!r}: {exc}", retryable=False
            ) from exc
        try:
            await driver.verify_connectivity()
        except AuthError as exc:
            await driver.close()
            raise GraphStoreUnavailableError(
                f"Neo4j at {uri} refused the credentials: {exc}", retryable=False
            ) from exc
        except (DriverError, Neo4jError) as exc:
            await driver.close()
            raise GraphStoreUnavailableError(f"Neo4j at {uri} is unreachable: {exc}") from exc
        store = cls(driver, names=names, clock=clock, database=database, retry=retry)
        store._owns_driver = True
        return store

    async def aclose(self) -> None:
        if self._owns_driver:
            await self._driver.close()

    # --- writes -------------------------------------------------------------------------

    async def apply(self, changes: GraphChanges) -> Applied:
        check_changes(changes)

        async def work(tx: AsyncTransaction) -> Applied:
            return await self._apply(tx, changes, self._clock())

        return await transact(self._driver, work, database=self._database, retry=self._retry)

    async def add_strategy_refs(self, strategy_id: str, node_ids: Sequence[str]) -> None:
        refs = StrategyRefs(strategy_id, tuple(node_ids))
        check_refs(refs, "")

        async def work(tx: AsyncTransaction) -> None:
            await run(tx, self._q.lock_nodes, ids=sorted(set(refs.node_ids)))
            stored = await self._read(tx, refs.node_ids)
            self._check_known(refs, set(), stored, "")
            await self._add_refs(tx, refs)

        await transact(self._driver, work, database=self._database, retry=self._retry)

    async def release_strategy(self, strategy_id: str) -> list[str]:
        async def work(tx: AsyncTransaction) -> list[str]:
            rows = await run(tx, self._q.release, strategy_id=strategy_id, now=self._clock())
            await run(tx, self._q.clear_snapshot, strategy_id=strategy_id)
            return [str(r["node_id"]) for r in rows]

        return await transact(self._driver, work, database=self._database, retry=self._retry)

    async def delete_queues(
        self, topics: Sequence[str], *, announce: DeleteAnnouncements | None = None
    ) -> list[str]:
        check_ids("topics", topics)
        check_announcements(announce)
        # A topic named twice is deleted (and answered) once, at its first place.
        unique = list(dict.fromkeys(topics))

        async def work(tx: AsyncTransaction) -> list[str]:
            rows = await run(tx, self._q.delete_queues, topics=unique)
            deleted = [unique[int(r["i"])] for r in rows]
            if announce is not None:
                await self._enqueue(tx, [announce[t] for t in deleted if t in announce])
            return deleted

        if not unique:
            return []
        return await transact(self._driver, work, database=self._database, retry=self._retry)

    async def record_answer(
        self, key: str, etag: str, *, announce: AnswerAnnouncement | None = None
    ) -> tuple[int, bool]:
        check_key(key)

        async def work(tx: AsyncTransaction) -> tuple[int, bool]:
            [row] = await run(tx, self._q.record_answer, key=key, etag=etag)
            version, changed = int(row["version"]), bool(row["changed"])
            message = announce(version) if changed and announce is not None else None
            if message is not None:
                check_message(message, "announce")  # raising here rolls the bump back
                await self._enqueue(tx, [message])
            return version, changed

        return await transact(self._driver, work, database=self._database, retry=self._retry)

    async def outbox_ack(self, ids: Sequence[str]) -> int:
        check_ids("ids", ids)
        unique = sorted(set(ids))

        async def work(tx: AsyncTransaction) -> int:
            [row] = await run(tx, self._q.outbox_ack, ids=unique)
            return int(row["removed"])

        if not unique:
            return 0
        return await transact(self._driver, work, database=self._database, retry=self._retry)

    async def _enqueue(self, tx: AsyncTransaction, messages: Sequence[OutboxMessage]) -> None:
        if not messages:
            return
        rows = [
            {"id": m.id, "topic": m.topic, "payload": m.payload, "seq": seq}
            for seq, m in enumerate(messages)
        ]
        await run(tx, self._q.outbox_write, rows=rows, now=self._clock())

    # --- reads --------------------------------------------------------------------------

    async def get_nodes(self, node_ids: Sequence[str]) -> dict[str, StoredNode]:
        check_ids("node_ids", node_ids)

        async def work(tx: AsyncTransaction) -> dict[str, StoredNode]:
            rows = await run_rows(tx, self._q.get_nodes, ids=list(dict.fromkeys(node_ids)))
            found = {str(row[0]): _stored(row) for row in rows}
            return {nid: found[nid] for nid in node_ids if nid in found}

        return await self._read_tx(work)

    async def queues_by_tags(
        self, tags: Sequence[str], interval: int, match_mode: MatchMode
    ) -> list[TaggedQueue]:
        check_ids("tags", tags)
        check_interval(interval)
        wanted = sorted(set(tags))
        if not wanted:
            return []
        all_tags = match_mode == match_mode_pb2.MATCH_MODE_ALL
        query = self._q.lookup_all if all_tags else self._q.lookup_any

        async def work(tx: AsyncTransaction) -> list[TaggedQueue]:
            rows = await run_rows(tx, query, tags=wanted, wanted=len(wanted), interval=interval)
            return [
                TaggedQueue(
                    topic=str(topic),
                    node_id=str(node_id),
                    interval=int(node_interval),
                    tags=tuple(sorted(tags or ())),
                    is_global=bool(is_global),
                )
                for topic, node_id, node_interval, tags, is_global in rows
            ]

        return await self._read_tx(work)

    async def orphans(self, older_than: float, limit: int = 1000) -> list[Orphan]:
        check_batch("limit", limit)
        cutoff = self._clock() - older_than

        async def work(tx: AsyncTransaction) -> list[Orphan]:
            rows = await run_rows(tx, self._q.orphans, cutoff=cutoff, limit=limit)
            return [
                Orphan(
                    topic=str(topic),
                    node_id=str(node_id),
                    node_type=str(node_type),
                    interval=int(interval),
                    tags=tuple(sorted(tags or ())),
                    created_at=float(created_at),
                    orphaned_since=float(orphaned_since),
                )
                for topic, node_id, node_type, interval, tags, created_at, orphaned_since in rows
            ]

        return await self._read_tx(work)

    async def outbox_pending(self, limit: int = DEFAULT_OUTBOX_PAGE) -> list[OutboxEntry]:
        check_page(limit)

        async def work(tx: AsyncTransaction) -> list[OutboxEntry]:
            rows = await run_rows(tx, self._q.outbox_pending, limit=limit)
            return [
                OutboxEntry(str(eid), str(topic), bytes(payload), float(created_at))
                for eid, topic, payload, created_at in rows
            ]

        return await self._read_tx(work)

    # --- the steps of apply -------------------------------------------------------------

    async def _apply(self, tx: AsyncTransaction, changes: GraphChanges, now: float) -> Applied:
        written = {n.node_id for n in changes.nodes}
        ref_ids = set(changes.refs.node_ids) if changes.refs is not None else set()
        await run(tx, self._q.lock_nodes, ids=sorted(written | ref_ids))
        deps = {d for n in changes.nodes for d in n.dependencies}
        seen = changes.snapshot.seen if changes.snapshot is not None else {}
        stored = await self._read(tx, sorted(written | ref_ids | deps | set(seen)))
        new = [n for n in changes.nodes if n.node_id not in stored]
        owners = await self._topic_owners(tx, [n.topic for n in new])
        # Checked in the in-memory adapter's order, so both report the same first error.
        for index, node in enumerate(changes.nodes):
            for dep in node.dependencies:
                if dep not in written and dep not in stored:
                    raise MissingDependencyError(
                        f"unknown dependency {dep}", field=f"nodes[{index}].dependencies"
                    )
            owner = owners.get(node.topic)
            if node.node_id not in stored and owner is not None:
                raise TopicConflictError(
                    f"topic {node.topic} belongs to node {owner}", field=f"nodes[{index}].topic"
                )
        if changes.refs is not None:
            self._check_known(changes.refs, written, stored, "refs.")

        keep_snapshot = all(
            (stored[nid].rev if nid in stored else NOT_STORED) == rev for nid, rev in seen.items()
        )
        await self._write_nodes(tx, changes.nodes, stored, now)
        if changes.refs is not None:
            await self._add_refs(tx, changes.refs)
            await self._record_snapshot(
                tx, changes if keep_snapshot else replace(changes, snapshot=None)
            )
        topics = {
            n.node_id: stored[n.node_id].topic if n.node_id in stored else n.topic
            for n in changes.nodes
        }
        return Applied(topics=topics, created=tuple(n.node_id for n in new))

    async def _write_nodes(
        self,
        tx: AsyncTransaction,
        nodes: Sequence[NodeWrite],
        stored: dict[str, _Current],
        now: float,
    ) -> None:
        create = [{"props": _props(n), "topic": n.topic} for n in nodes if n.node_id not in stored]
        update = []
        pairs: set[tuple[str, str]] = set()  # (tag, node_id) edges to add
        for n in nodes:
            current = stored.get(n.node_id)
            old = set(current.tags) if current is not None else set()
            added = set(n.tags) - old
            pairs.update((tag, n.node_id) for tag in added)
            # A resubmit changes nothing: writing only real changes keeps it a read.
            if current is not None and (
                added or n.schema_hash != current.schema_hash or n.is_global != current.is_global
            ):
                update.append(
                    {
                        "node_id": n.node_id,
                        "tags": sorted(old | set(n.tags)),
                        "schema_hash": n.schema_hash,
                        "global": n.is_global,
                    }
                )
        if create:
            await run(tx, self._q.create_nodes, rows=create, now=now)
        if update:
            await run(tx, self._q.update_nodes, rows=update)
        if pairs:
            rows = [{"tag": tag, "node_id": nid} for tag, nid in sorted(pairs)]
            await run(tx, self._q.tag_nodes, pairs=rows)

    async def _record_snapshot(self, tx: AsyncTransaction, changes: GraphChanges) -> None:
        assert changes.refs is not None
        strategy_id = changes.refs.strategy_id
        if changes.snapshot is None:
            await run(tx, self._q.clear_snapshot, strategy_id=strategy_id)
            return
        await run(
            tx,
            self._q.write_snapshot,
            strategy_id=strategy_id,
            key=changes.snapshot.key,
            payload=changes.snapshot.payload,
        )

    async def snapshot(self, strategy_id: str, key: str) -> bytes | None:
        if not strategy_id or not key:
            return None

        async def work(tx: AsyncTransaction) -> bytes | None:
            # Not `record.data()`: it would walk the payload byte by byte (0.5 s for 250 kB).
            result = await tx.run(self._q.read_snapshot, strategy_id=strategy_id, key=key)
            record = await result.single()
            return None if record is None else bytes(record["payload"])

        return await self._read_tx(work)

    async def _add_refs(self, tx: AsyncTransaction, refs: StrategyRefs) -> None:
        await run(
            tx, self._q.add_refs, strategy_id=refs.strategy_id, ids=sorted(set(refs.node_ids))
        )

    async def _read(self, tx: AsyncTransaction, ids: Sequence[str]) -> dict[str, _Current]:
        """The stored nodes among `ids`, by id."""
        rows = await run_rows(tx, self._q.read_nodes, ids=list(ids))
        return {
            str(node_id): _Current(
                str(topic), tuple(tags or ()), str(schema_hash), bool(is_global), int(rev)
            )
            for node_id, topic, tags, schema_hash, is_global, rev in rows
        }

    async def _topic_owners(self, tx: AsyncTransaction, topics: list[str]) -> dict[str, str]:
        if not topics:
            return {}
        rows = await run(tx, self._q.topic_owners, topics=topics)
        return {str(r["topic"]): str(r["node_id"]) for r in rows}

    @staticmethod
    def _check_known(
        refs: StrategyRefs, written: set[str], stored: dict[str, Any], prefix: str
    ) -> None:
        for index, nid in enumerate(refs.node_ids):
            if nid not in written and nid not in stored:
                raise UnknownNodeError(f"unknown node {nid}", field=f"{prefix}node_ids[{index}]")

    async def _read_tx(self, work: Work[T]) -> T:
        return await transact(
            self._driver, work, database=self._database, retry=self._retry, write=False
        )
