"""Builds the wire DiffResult from the plan and what the store answered."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from google.protobuf import timestamp_pb2

from qmtl.dag.v1 import buffer_instruction_pb2, diff_result_pb2, queue_pb2
from qmtl.runtime.graphstore import TaggedQueue

from .limits import BUFFER_WINDOW_SECONDS
from .plan import NodePlan

BufferReason = buffer_instruction_pb2.BufferReason


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def buffer_instruction(plan: NodePlan, now: float) -> buffer_instruction_pb2.BufferInstruction:
    """The instruction of a reused node whose schema_hash changed (stored is not None)."""
    assert plan.stored is not None
    return buffer_instruction_pb2.BufferInstruction(
        node_id=plan.parsed.node_id,
        reason=BufferReason.BUFFER_REASON_SCHEMA_CHANGED,
        lag=plan.parsed.node.spec.period,
        schema_hash=plan.parsed.node.schema_hash,
        previous_schema_hash=plan.stored.schema_hash,
        buffering_since=_timestamp(now),
        recompute_at=_timestamp(now + BUFFER_WINDOW_SECONDS),
    )


def descriptor(plan: NodePlan, topic: str) -> queue_pb2.QueueDescriptor:
    tags = set(plan.parsed.node.tags)
    if plan.stored is not None:
        tags.update(plan.stored.tags)  # the store keeps the union of every diff's tags
    return queue_pb2.QueueDescriptor(
        queue=topic,
        is_global=plan.stored.is_global if plan.stored is not None else False,
        node_id=plan.parsed.node_id,
        interval=plan.interval,
        tags=sorted(tags),
    )


def resolved(queues: Sequence[TaggedQueue]) -> queue_pb2.ResolvedQueues:
    return queue_pb2.ResolvedQueues(
        queues=[
            queue_pb2.QueueDescriptor(
                queue=q.topic,
                is_global=q.is_global,
                node_id=q.node_id,
                interval=q.interval,
                tags=list(q.tags),
            )
            for q in queues
        ]
    )


def build_result(
    *,
    strategy_id: str,
    plans: Sequence[NodePlan],
    topics: Mapping[str, str],
    created: set[str],
    buffers: Sequence[buffer_instruction_pb2.BufferInstruction],
    tag_queries: Mapping[str, Sequence[TaggedQueue]],
    crc32: int,
    version: str,
    dry_run: bool,
) -> diff_result_pb2.DiffResult:
    result = diff_result_pb2.DiffResult(
        strategy_id=strategy_id, crc32=crc32, version=version, dry_run=dry_run
    )
    for plan in plans:
        node_id = plan.parsed.node_id
        result.queue_map.queues[node_id].CopyFrom(descriptor(plan, topics[node_id]))
        (result.new_node_ids if node_id in created else result.reused_node_ids).append(node_id)
    for node_id, queues in tag_queries.items():
        result.queue_map.tag_queries[node_id].CopyFrom(resolved(queues))
    result.buffer_nodes.extend(buffers)
    return result
