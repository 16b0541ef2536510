"""DiffService: a strategy's DAG against the global DAG, with queues that survive restarts.

Steps (docs/operations/diff.md): validate everything; one lookup of the DAG's nodes and its
outside dependencies; decide reuse / new / buffer and name new queues; unless a dry run,
create the new topics, then write every node and the strategy's references in ONE graph
transaction (renaming and retrying when another node owns a proposed name); resolve the tag
queries; answer. A failure before the graph write leaves the graph untouched.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from qmtl.dag.v1 import diff_result_pb2, node_pb2
from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.runtime import nodeid
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.graphstore import (
    MAX_BATCH,
    DiffSnapshot,
    GraphChanges,
    GraphStore,
    GraphStoreError,
    MatchMode,
    StoredNode,
    StrategyRefs,
    TaggedQueue,
    TopicConflictError,
)
from qmtl.runtime.topicadmin import TopicAdmin, TopicAdminError, topic_spec_for

from ..touched import Touched
from .errors import ErrorCode, dag_invalid, diff_error
from .limits import DiffLimits
from .naming import TopicNamesExhausted, version_of
from .plan import NodePlan, Planner
from .result import buffer_instruction, build_result, resolved
from .snapshot import record, recorded_result, snapshot_key
from .validate import ValidatedDag, validate_request

_CONFLICT_FIELD = re.compile(r"nodes\[(\d+)\]\.topic")


class DiffService:
    def __init__(
        self,
        store: GraphStore,
        topics: TopicAdmin,
        *,
        clock: Callable[[], float] = time.time,
        limits: DiffLimits | None = None,
    ) -> None:
        self._store = store
        self._topics = topics
        self._clock = clock
        self._limits = limits if limits is not None else DiffLimits()

    async def diff(self, request: diff_messages_pb2.DiffRequest) -> diff_result_pb2.DiffResult:
        return (await self.run(request)).result

    async def run(self, request: diff_messages_pb2.DiffRequest) -> DiffOutcome:
        """The diff, and which nodes it put into tag-query answers (for their refresh)."""
        key = None
        if not request.dry_run and request.strategy_id:
            key = snapshot_key(request)
            replayed = await self._replay(request, key)
            if replayed is not None:
                return DiffOutcome(replayed, ())
        checked = validate_request(request, self._limits)
        version = version_of(request.dag.meta)
        stored = await self._lookup(checked)
        now = self._clock()
        planner = Planner(version, request.dry_run)
        try:
            plans = planner.plan(checked.nodes, stored)
        except TopicNamesExhausted as exc:
            raise _names_exhausted(exc) from None
        buffers = [
            buffer_instruction(plan, now)
            for plan in plans
            if plan.stored is not None and plan.stored.schema_hash != plan.parsed.node.schema_hash
        ]
        if request.dry_run:
            topics = {plan.parsed.node_id: plan.topic for plan in plans}
            created = {plan.parsed.node_id for plan in plans if plan.stored is None}
        else:
            refs = StrategyRefs(
                request.strategy_id,
                tuple(p.node_id for p in checked.nodes) + tuple(checked.external),
            )
            assert key is not None
            topics, created = await self._persist(
                planner, plans, refs, lambda: record(key, request, plans, checked.crc32, version)
            )
            # A node another DAG Manager created first is reused here, buffering or not.
            buffers = [b for b in buffers if b.node_id not in created]
        tag_queries = await self._resolve_tag_queries(
            [_query_of(p.node, p.node_id) for p in checked.nodes if p.is_tag_query]
        )
        result = build_result(
            strategy_id=request.strategy_id,
            plans=plans,
            topics=topics,
            created=created,
            buffers=buffers,
            tag_queries=tag_queries,
            crc32=checked.crc32,
            version=version,
            dry_run=request.dry_run,
        )
        touched = () if request.dry_run else _touched(plans, created)
        return DiffOutcome(result, touched)

    async def _replay(
        self, request: diff_messages_pb2.DiffRequest, key: str
    ) -> diff_result_pb2.DiffResult | None:
        """The recorded answer to these exact bytes, if it still holds, with fresh tag-query
        answers; None sends the request down the full diff."""
        try:
            payload = await self._store.snapshot(request.strategy_id, key)
        except GraphStoreError as exc:
            raise exc.to_qmtl_error() from None
        if payload is None:
            return None
        try:
            result = recorded_result(payload)
        except DecodeError:
            return None  # not ours to fail on: the full diff answers and records it anew
        queries = [
            _query_of(node, node.node_id)
            for node in request.dag.nodes
            if nodeid.is_tag_query(node.kind, node.spec.node_type)
        ]
        for node_id, queues in (await self._resolve_tag_queries(queries)).items():
            result.queue_map.tag_queries[node_id].CopyFrom(resolved(queues))
        return result

    async def _lookup(self, checked: ValidatedDag) -> dict[str, StoredNode]:
        ids = [p.node_id for p in checked.nodes] + list(checked.external)
        stored: dict[str, StoredNode] = {}
        try:
            # One call unless the DAG plus its outside dependencies exceed one batch, which
            # validation already refused; the loop only keeps a store's batch limit honest.
            for start in range(0, len(ids), MAX_BATCH):
                stored.update(await self._store.get_nodes(ids[start : start + MAX_BATCH]))
        except GraphStoreError as exc:
            raise exc.to_qmtl_error() from None
        for dep, field in checked.external.items():
            if dep not in stored:
                raise dag_invalid(
                    field, f"dependency {dep} is neither in the DAG nor stored", dependency=dep
                )
        return stored

    async def _persist(
        self,
        planner: Planner,
        plans: list[NodePlan],
        refs: StrategyRefs,
        snapshot: Callable[[], DiffSnapshot],
    ) -> tuple[dict[str, str], set[str]]:
        """Topics first, then one graph transaction (with the answer a resubmission will get:
        `snapshot`, built per attempt since a rename changes it); returns the stored topic of
        every node and the ids this call created."""
        ensured: set[str] = set()
        for _ in range(self._limits.max_apply_attempts):
            await self._ensure_topics([p for p in plans if p.stored is None], ensured)
            changes = GraphChanges(
                nodes=tuple(p.write() for p in plans), refs=refs, snapshot=snapshot()
            )
            try:
                applied = await self._store.apply(changes)
            except TopicConflictError as exc:
                self._rename_conflicting(planner, plans, exc)
                continue
            except GraphStoreError as exc:
                raise exc.to_qmtl_error() from None
            return dict(applied.topics), set(applied.created)
        raise diff_error(
            ErrorCode.ERROR_CODE_UNAVAILABLE,
            "dag.nodes",
            f"new queue names still collided after {self._limits.max_apply_attempts} "
            "attempts; retry the diff",
            attempts=self._limits.max_apply_attempts,
        )

    async def _ensure_topics(self, new: list[NodePlan], ensured: set[str]) -> None:
        try:
            specs = [
                topic_spec_for(p.topic, p.parsed.node.spec.node_type)
                for p in new
                if p.topic not in ensured
            ]
            if specs:
                await self._topics.ensure_topics(specs)
        except TopicAdminError as exc:
            raise exc.to_qmtl_error() from None
        ensured.update(spec.name for spec in specs)

    def _rename_conflicting(
        self, planner: Planner, plans: list[NodePlan], exc: TopicConflictError
    ) -> None:
        match = _CONFLICT_FIELD.fullmatch(exc.field)
        if match is None or int(match.group(1)) >= len(plans):
            raise exc.to_qmtl_error() from None
        try:
            planner.rename(plans[int(match.group(1))])
        except TopicNamesExhausted as exhausted:
            raise _names_exhausted(exhausted) from None

    async def _resolve_tag_queries(self, queries: Sequence[_Query]) -> dict[str, list[TaggedQueue]]:
        answers: dict[str, list[TaggedQueue]] = {}
        try:
            for node_id, tags, interval, match_mode in queries:
                answers[node_id] = await self._store.queues_by_tags(tags, interval, match_mode)
        except GraphStoreError as exc:
            raise exc.to_qmtl_error() from None
        return answers


@dataclass(frozen=True, slots=True)
class DiffOutcome:
    result: diff_result_pb2.DiffResult
    # Nodes this diff added to tag-query answers: created, or given a tag they lacked.
    # Empty for a dry run and for a replayed resubmission (it changed nothing).
    touched: tuple[Touched, ...]


# (node_id, sorted distinct tags, interval, match mode) of one tag-query node.
_Query = tuple[str, list[str], int, MatchMode]


def _query_of(node: node_pb2.Node, node_id: str) -> _Query:
    spec = node.spec
    query = spec.tag_query
    return node_id, sorted(set(query.tags)), spec.interval or query.interval, query.match_mode


def _touched(plans: Sequence[NodePlan], created: set[str]) -> tuple[Touched, ...]:
    touched = []
    for plan in plans:
        node = plan.parsed.node
        if (
            plan.parsed.node_id in created
            or plan.stored is None
            or not set(plan.stored.tags).issuperset(node.tags)
        ):
            touched.append(Touched(tuple(node.tags), node.spec.interval))
    return tuple(touched)


def _names_exhausted(exc: TopicNamesExhausted) -> QmtlError:
    return diff_error(ErrorCode.ERROR_CODE_UNAVAILABLE, "dag.nodes", str(exc))
