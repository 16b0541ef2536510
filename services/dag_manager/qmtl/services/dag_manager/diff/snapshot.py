"""Answering an identical resubmission from the graph's record of the last diff.

Most diffs resubmit a DAG the strategy already submitted (a restart, a redeploy, a retry).
The full diff re-reads and re-writes every node; instead, each diff records its answer with
the strategy (GraphStore `DiffSnapshot`), keyed by a hash of the request, and the next diff
of the same bytes is answered from it in one read, which holds only while nothing it answered
for has changed (docs/operations/diff.md, "Resubmissions"). Tag-query answers are never
recorded: they are resolved afresh each time.
"""

from __future__ import annotations

from collections.abc import Sequence

from blake3 import blake3

from qmtl.dag.v1 import diff_result_pb2
from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.runtime.graphstore import NOT_STORED, DiffSnapshot

from .plan import NodePlan
from .result import build_result

# Names the payload's format: a change to what is recorded (or how the key is made) changes
# this, so records written by an older DAG Manager are simply not found.
KEY_DOMAIN = b"qmtl.dag-manager.diff-snapshot.v1\x00"


def snapshot_key(request: diff_messages_pb2.DiffRequest) -> str:
    """Of everything in the request that shapes the answer except the strategy (the record
    belongs to it) and dry_run (never recorded)."""
    digest = blake3(KEY_DOMAIN)
    digest.update(request.node_ids_crc32.to_bytes(4, "big"))
    digest.update(request.dag.SerializeToString(deterministic=True))
    return digest.hexdigest()


def record(
    key: str,
    request: diff_messages_pb2.DiffRequest,
    plans: Sequence[NodePlan],
    crc32: int,
    version: str,
) -> DiffSnapshot:
    """What a resubmission of `request` would answer once this diff is written: every node
    reused on the queue this diff gives it, no buffering (the stored schema hash is then this
    DAG's). `seen` lets the store refuse it if the graph moved since the diff read it."""
    answer = build_result(
        strategy_id=request.strategy_id,
        plans=plans,
        topics={plan.parsed.node_id: plan.topic for plan in plans},
        created=set(),
        buffers=(),
        tag_queries={},
        crc32=crc32,
        version=version,
        dry_run=False,
    )
    seen = {
        plan.parsed.node_id: NOT_STORED if plan.stored is None else plan.stored.rev
        for plan in plans
    }
    return DiffSnapshot(key=key, payload=answer.SerializeToString(), seen=seen)


def recorded_result(payload: bytes) -> diff_result_pb2.DiffResult:
    return diff_result_pb2.DiffResult.FromString(payload)
