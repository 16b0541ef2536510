"""From the Gateway's diff to what this process runs: `plan_from_diff(strategy, diff)`.

The rule (docs/sdk.md, "Running a strategy"):

- every node of the strategy gets the topic the queue map names for it;
- a node the diff lists as reused is consumed from its topic and never computed here: another
  strategy's process already produces it (that is the point of sharing);
- a new `Node` is computed here, and so is a new `TagQueryNode` with a compute function (it
  computes over the queues its query resolves to); a `TagQueryNode` without one computes
  nothing, its resolved queues are read by the nodes downstream of it;
- a source (`StreamInput`) is never computed: the user feeds it (`Runner.feed`).

A tag query's resolved queues leave out global queues (shared infrastructure, not data) and the
queues of the node itself and of the nodes that depend on it in this strategy: the query's tags
are also the node's own tags, and consuming its own output would be a loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from qmtl.common.v1 import error_code_pb2
from qmtl.dag.v1 import diff_result_pb2, queue_pb2
from qmtl.runtime.errors import QmtlError

from .authoring import NodeLike
from .runner.model import RunPlan
from .strategy import Strategy

SOURCE = "StreamInput"
TAG_QUERY = "TagQueryNode"


class PlanError(QmtlError):
    """The diff does not describe the strategy (a node without a queue, or another DAG)."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(error_code_pb2.ERROR_CODE_INVALID_ARGUMENT, message, details=details)


def computes_here(node: NodeLike) -> bool:
    """Whether a node that is new in the diff is computed by the process that submitted it."""
    if node.node_type == SOURCE:
        return False
    if node.node_type == TAG_QUERY:
        return node.compute_fn is not None
    return True


def _downstream(strategy: Strategy, node_id: str) -> frozenset[str]:
    """`node_id` and every node of the strategy that depends on it, directly or not."""
    found = {node_id}
    for node in strategy.nodes:  # topological order: inputs come before their consumers
        if any(upstream.node_id in found for upstream in node.inputs):
            found.add(node.node_id)
    return frozenset(found)


def resolved_topics(
    queues: Iterable[queue_pb2.QueueDescriptor], *, exclude_nodes: frozenset[str] = frozenset()
) -> tuple[str, ...]:
    """The topics a tag query reads: sorted, distinct, no global queue, none of `exclude_nodes`."""
    return tuple(
        sorted({q.queue for q in queues if not q.is_global and q.node_id not in exclude_nodes})
    )


def tag_query_exclusions(strategy: Strategy) -> Mapping[str, frozenset[str]]:
    """TagQueryNode id -> the node ids whose queues it must not read (itself, its consumers)."""
    return {
        node.node_id: _downstream(strategy, node.node_id)
        for node in strategy.nodes
        if node.node_type == TAG_QUERY
    }


def plan_from_diff(strategy: Strategy, diff: diff_result_pb2.DiffResult) -> RunPlan:
    """The RunPlan of `strategy` under `diff` (the module docstring states the rule)."""
    queues = diff.queue_map.queues
    topics: dict[str, str] = {}
    for node in strategy.nodes:
        descriptor = queues.get(node.node_id)
        if descriptor is None or not descriptor.queue:
            raise PlanError(
                f"the diff has no queue for node {node.name!r} ({node.node_id}) of strategy "
                f"{strategy.name!r}: it was made for another DAG",
                node_id=node.node_id,
                node=node.name,
            )
        topics[node.node_id] = descriptor.queue
    reused = set(diff.reused_node_ids)
    new = set(diff.new_node_ids)
    unknown = (reused | new) - topics.keys()
    if unknown:
        raise PlanError(
            f"the diff names {len(unknown)} node(s) that strategy {strategy.name!r} does not "
            f"have, e.g. {sorted(unknown)[0]}",
            node_ids=sorted(unknown),
        )
    run = frozenset(
        node.node_id
        for node in strategy.nodes
        if node.node_id in new and node.node_id not in reused and computes_here(node)
    )
    exclusions = tag_query_exclusions(strategy)
    tag_inputs = {
        node_id: resolved_topics(
            diff.queue_map.tag_queries[node_id].queues
            if node_id in diff.queue_map.tag_queries
            else (),
            exclude_nodes=excluded,
        )
        for node_id, excluded in exclusions.items()
    }
    return RunPlan(strategy=strategy, topics=topics, run=run, tag_inputs=tag_inputs)
