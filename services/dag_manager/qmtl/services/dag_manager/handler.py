"""The DAG Manager's rpcs on its core: diff, release, tag queries, node reads and GC.

`DagManagerHandler` is what the generated HTTP routes and gRPC adapter call. It implements
Diff, ReleaseStrategy, TriggerGc, GetQueuesByTag and GetNode; every other rpc keeps the Base's
E_UNIMPLEMENTED until the process that serves it (issue 12) lands. docs/operations/dag-manager.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from qmtl.dag.v1 import compute_node_pb2, node_pb2, node_spec_pb2
from qmtl.dagmanager.v1 import (
    diff_messages_pb2,
    gc_messages_pb2,
    node_messages_pb2,
    queue_messages_pb2,
    release_messages_pb2,
)
from qmtl.dagmanager.v1.dag_manager_service_handler import DagManagerServiceBase
from qmtl.runtime import nodeid
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.gen import Context
from qmtl.runtime.graphstore import GraphStore, GraphStoreError, StoredNode
from qmtl.runtime.topicadmin import TopicAdmin

from .diff import DiffService
from .events import DEFAULT_SOURCE
from .gc import GarbageCollector
from .relay import OutboxNotify
from .release import release_strategy
from .tag_queries import TagQueryService
from .tag_query_rules import MAX_INTERVAL
from .touched import Touched

_log = logging.getLogger(__name__)


class DagManagerHandler(DagManagerServiceBase):
    def __init__(
        self,
        store: GraphStore,
        topics: TopicAdmin,
        events: OutboxNotify | None = None,
        *,
        clock: Callable[[], float] = time.time,
        source: str = DEFAULT_SOURCE,
        diff: DiffService | None = None,
        gc: GarbageCollector | None = None,
        tag_queries: TagQueryService | None = None,
    ) -> None:
        self._store = store
        self._diff = diff if diff is not None else DiffService(store, topics, clock=clock)
        self._gc = (
            gc
            if gc is not None
            else GarbageCollector(store, topics, events, clock=clock, source=source)
        )
        self.tag_queries = (
            tag_queries
            if tag_queries is not None
            else TagQueryService(store, events, clock=clock, source=source)
        )

    async def diff(
        self, request: diff_messages_pb2.DiffRequest, ctx: Context
    ) -> diff_messages_pb2.DiffResponse:
        outcome = await self._diff.run(request)
        if not request.dry_run:
            for node in request.dag.nodes:
                self._track_query(node)
            await self._refresh(list(outcome.touched), "diff of " + request.strategy_id)
        return diff_messages_pb2.DiffResponse(result=outcome.result)

    async def release_strategy(
        self, request: release_messages_pb2.ReleaseStrategyRequest, ctx: Context
    ) -> release_messages_pb2.ReleaseStrategyResponse:
        return await release_strategy(self._store, request)

    async def trigger_gc(
        self, request: gc_messages_pb2.TriggerGcRequest, ctx: Context
    ) -> gc_messages_pb2.TriggerGcResponse:
        outcome = await self._gc.sweep(dry_run=request.dry_run, batch_size=request.batch_size)
        touched = [Touched(q.tags, q.interval) for q in outcome.dropped]
        await self._refresh(touched, "garbage collection")
        return gc_messages_pb2.TriggerGcResponse(report=outcome.report)

    async def get_queues_by_tag(
        self, request: queue_messages_pb2.GetQueuesByTagRequest, ctx: Context
    ) -> queue_messages_pb2.GetQueuesByTagResponse:
        # queue_messages.proto: interval is required here (0 is "none", not "any"), and an
        # empty tag list matches nothing rather than being an error.
        if not 1 <= request.interval <= MAX_INTERVAL:
            raise QmtlError.validation(
                f"interval: required, 1..{MAX_INTERVAL} seconds, got {request.interval}",
                field="interval",
            )
        if not request.tags:
            return queue_messages_pb2.GetQueuesByTagResponse()
        queues = await self.tag_queries.answer(request.tags, request.interval, request.match_mode)
        return queue_messages_pb2.GetQueuesByTagResponse(queues=queues)

    async def get_node(
        self, request: node_messages_pb2.GetNodeRequest, ctx: Context
    ) -> node_messages_pb2.GetNodeResponse:
        if not request.node_id:
            raise QmtlError.validation("node_id: must not be empty", field="node_id")
        try:
            found = await self._store.get_nodes([request.node_id])
        except GraphStoreError as error:
            raise error.to_qmtl_error() from error
        stored = found.get(request.node_id)
        if stored is None:
            raise QmtlError.not_found(
                f"node {request.node_id} is not stored", field="node_id", node_id=request.node_id
            )
        return node_messages_pb2.GetNodeResponse(node=compute_node(stored))

    def _track_query(self, node: node_pb2.Node) -> None:
        spec = node.spec
        if spec.HasField("tag_query") and nodeid.is_tag_query(node.kind, spec.node_type):
            interval = spec.interval or spec.tag_query.interval
            self.tag_queries.track(spec.tag_query.tags, interval, spec.tag_query.match_mode)

    async def _refresh(self, touched: list[Touched], cause: str) -> None:
        if not touched:
            return
        try:
            await self.tag_queries.refresh_touched(touched)
        except QmtlError as error:
            # The change itself is stored; failing the rpc would make the caller retry a diff
            # or sweep that then touches nothing. The queries stay queued for the next refresh.
            _log.warning("tag-query refresh after %s failed: %s", cause, error)


def compute_node(stored: StoredNode) -> compute_node_pb2.ComputeNode:
    """The wire view of a stored node. The store keeps the identity fields, not the node as
    submitted: kind, name, metadata and the tag query itself are not part of it."""
    params = "" if stored.params_canon == "null" else stored.params_canon
    node = compute_node_pb2.ComputeNode(
        node=node_pb2.Node(
            node_id=stored.node_id,
            spec=node_spec_pb2.NodeSpec(
                node_type=stored.node_type,
                interval=stored.interval,
                period=stored.period,
                params_json=params,
                dependencies=list(stored.dependencies),
                schema_compat_id=stored.schema_compat_id,
                code_hash=stored.code_hash,
            ),
            tags=list(stored.tags),
            schema_hash=stored.schema_hash,
        ),
        queue=stored.topic,
        strategy_count=stored.ref_count,
    )
    node.created_at.FromNanoseconds(round(stored.created_at * 1_000_000_000))
    return node
