"""Argument checks shared by every adapter, run before any write so a bad call writes nothing
and every adapter rejects exactly the same inputs with the same field path."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import GraphBatchTooLargeError, InvalidGraphInputError
from .model import MAX_BATCH, MAX_SNAPSHOT_BYTES, GraphChanges, NodeWrite, StrategyRefs


def check_batch(what: str, count: int) -> None:
    if count > MAX_BATCH:
        raise GraphBatchTooLargeError(
            f"{count} entries in one call, the limit is {MAX_BATCH}", field=what
        )


def check_ids(what: str, ids: Sequence[str]) -> None:
    check_batch(what, len(ids))
    for index, value in enumerate(ids):
        if not value:
            raise InvalidGraphInputError("must not be empty", field=f"{what}[{index}]")


def check_key(key: str) -> None:
    if not key:
        raise InvalidGraphInputError("must not be empty", field="key")


def check_interval(interval: int, what: str = "interval") -> None:
    if interval < 0:
        raise InvalidGraphInputError(f"must be >= 0 (0 = none), got {interval}", field=what)


def _check_node(index: int, node: NodeWrite) -> None:
    where = f"nodes[{index}]"
    for name in ("node_id", "node_type", "topic"):
        if not getattr(node, name):
            raise InvalidGraphInputError("must not be empty", field=f"{where}.{name}")
    check_interval(node.interval, f"{where}.interval")
    if node.period < 0:
        raise InvalidGraphInputError(f"must be >= 0, got {node.period}", field=f"{where}.period")
    for t_index, tag in enumerate(node.tags):
        if not tag:
            raise InvalidGraphInputError("must not be empty", field=f"{where}.tags[{t_index}]")
    if node.node_id in node.dependencies:
        raise InvalidGraphInputError(
            "a node cannot depend on itself", field=f"{where}.dependencies"
        )


def check_refs(refs: StrategyRefs, prefix: str = "refs.") -> None:
    """`prefix` is "refs." inside a change set, "" for add_strategy_refs' own arguments."""
    if not refs.strategy_id:
        raise InvalidGraphInputError("must not be empty", field=f"{prefix}strategy_id")
    check_ids(f"{prefix}node_ids", refs.node_ids)


def check_changes(changes: GraphChanges) -> None:
    check_batch("nodes", len(changes.nodes))
    node_ids: set[str] = set()
    topics: set[str] = set()
    for index, node in enumerate(changes.nodes):
        _check_node(index, node)
        if node.node_id in node_ids:
            raise InvalidGraphInputError(
                f"node {node.node_id} appears twice", field=f"nodes[{index}].node_id"
            )
        if node.topic in topics:
            raise InvalidGraphInputError(
                f"topic {node.topic} asked for twice", field=f"nodes[{index}].topic"
            )
        node_ids.add(node.node_id)
        topics.add(node.topic)
    if changes.refs is not None:
        check_refs(changes.refs)
    if changes.snapshot is not None:
        if changes.refs is None:
            raise InvalidGraphInputError(
                "a snapshot belongs to a strategy: give refs with it", field="snapshot"
            )
        if not changes.snapshot.key:
            raise InvalidGraphInputError("must not be empty", field="snapshot.key")
        check_snapshot_payload(len(changes.snapshot.payload))


def check_snapshot_payload(size: int) -> None:
    if size > MAX_SNAPSHOT_BYTES:
        raise GraphBatchTooLargeError(
            f"{size} bytes, the limit is {MAX_SNAPSHOT_BYTES}", field="snapshot.payload"
        )
