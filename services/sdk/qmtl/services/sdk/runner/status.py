"""Node states as the runner reports them (`ReportNodeStatus` takes `qmtl.dag.v1.NodeState`).

A node this process computes is RUNNING from `start()`, FAILED (with the error) once its
compute function raised or returned what cannot be a payload: it is not called again in this
process, since the same window would fail the same way. The counts (`NodeCounts`) are the
runner's own: NodeState has no field for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf import timestamp_pb2

from qmtl.dag.v1 import node_status_pb2
from qmtl.runtime.errors import QmtlError


@dataclass
class NodeCounts:
    computed: int = 0
    """Compute calls that returned (one per bucket at most)."""
    produced: int = 0
    """Outputs produced to the node's topic."""
    empty: int = 0
    """Calls that returned None (no output for that bucket)."""
    duplicates: int = 0
    """Buckets whose output the node's topic already had (same dedupe key): not produced
    again, and not even computed when that was known before the call (a replay)."""


@dataclass
class _Entry:
    status: node_status_pb2.NodeStatus.ValueType
    started_at: float
    updated_at: float
    finished_at: float | None = None
    error: QmtlError | None = None
    counts: NodeCounts = field(default_factory=NodeCounts)


def _ts(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1_000_000_000))
    return stamp


class StatusBoard:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def running(self, node_id: str) -> None:
        now = self._clock()
        self._entries[node_id] = _Entry(node_status_pb2.NODE_STATUS_RUNNING, now, now)

    def failed(self, node_id: str, error: QmtlError) -> None:
        entry = self._entries[node_id]
        now = self._clock()
        entry.status = node_status_pb2.NODE_STATUS_FAILED
        entry.updated_at = entry.finished_at = now
        entry.error = error

    def is_failed(self, node_id: str) -> bool:
        return self._entries[node_id].status == node_status_pb2.NODE_STATUS_FAILED

    def counts(self, node_id: str) -> NodeCounts:
        return self._entries[node_id].counts

    def all_counts(self) -> dict[str, NodeCounts]:
        return {node_id: entry.counts for node_id, entry in self._entries.items()}

    def state(self, node_id: str) -> node_status_pb2.NodeState:
        entry = self._entries[node_id]
        state = node_status_pb2.NodeState(
            node_id=node_id,
            status=entry.status,
            started_at=_ts(entry.started_at),
            updated_at=_ts(entry.updated_at),
        )
        if entry.finished_at is not None:
            state.finished_at.CopyFrom(_ts(entry.finished_at))
        if entry.error is not None:
            state.error.CopyFrom(entry.error.detail)
        return state

    def states(self) -> list[node_status_pb2.NodeState]:
        return [self.state(node_id) for node_id in sorted(self._entries)]
