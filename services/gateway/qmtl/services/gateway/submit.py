"""The pieces of a submission that are pure functions of what the client sent: its idempotency
fingerprint, the Strategy record, and the durable diff job with its idempotency key."""

from __future__ import annotations

import hashlib

from qmtl.dag.v1 import strategy_pb2
from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.gateway.v1 import strategy_messages_pb2
from qmtl.runtime.workqueue import WorkQueue
from qmtl.work.v1 import work_item_pb2, work_type_pb2

from .store.port import StrategyStore

DIFF_PAYLOAD_TYPE = diff_messages_pb2.DiffRequest.DESCRIPTOR.full_name


def fingerprint(request: strategy_messages_pb2.SubmitStrategyRequest) -> str:
    """Hex SHA-256 of the request without `wait_timeout` (how long a client waits is not part
    of what it submits), deterministically serialized: the same submission repeated under one
    idempotency key has the same fingerprint, a different one under that key is a conflict."""
    sent = strategy_messages_pb2.SubmitStrategyRequest()
    sent.CopyFrom(request)
    sent.ClearField("wait_timeout")
    return hashlib.sha256(sent.SerializeToString(deterministic=True)).hexdigest()


def diff_key(strategy_id: str, previous_work_item_id: str = "") -> str:
    """The work queue idempotency key of a strategy's diff job.

    Derived from the strategy and the work item it replaces ("" for the first), so whoever
    enqueues the next job for a strategy (the submit, a retry, the stranded sweep, a replayed
    submission) names the same job and the queue keeps one.
    """
    if not previous_work_item_id:
        return f"strategy-diff:{strategy_id}"
    return f"strategy-diff:{strategy_id}:after:{previous_work_item_id}"


def diff_job(strategy: strategy_pb2.Strategy, *, max_attempts: int) -> work_item_pb2.WorkItem:
    """The WORK_TYPE_STRATEGY_DIFF item of `strategy`. Its payload is a DAG Manager
    `DiffRequest` naming the strategy and checksum but without the DAG: the worker reads the
    DAG from the strategy store, so a DAG of up to 16 MiB is not stored a second time in the
    queue."""
    request = diff_messages_pb2.DiffRequest(
        strategy_id=strategy.strategy_id, node_ids_crc32=strategy.node_ids_crc32
    )
    return work_item_pb2.WorkItem(
        type=work_type_pb2.WORK_TYPE_STRATEGY_DIFF,
        payload_type=DIFF_PAYLOAD_TYPE,
        payload=request.SerializeToString(deterministic=True),
        max_attempts=max_attempts,
        strategy_id=strategy.strategy_id,
    )


def diff_request(
    strategy: strategy_pb2.Strategy, *, dry_run: bool = False
) -> diff_messages_pb2.DiffRequest:
    """The DAG Manager `Diff` call for `strategy`'s stored DAG."""
    request = diff_messages_pb2.DiffRequest(
        strategy_id=strategy.strategy_id,
        node_ids_crc32=strategy.node_ids_crc32,
        dry_run=dry_run,
    )
    request.dag.CopyFrom(strategy.dag)
    return request


async def enqueue_diff(
    store: StrategyStore,
    queue: WorkQueue,
    strategy: strategy_pb2.Strategy,
    *,
    max_attempts: int,
    previous_work_item_id: str = "",
) -> strategy_pb2.Strategy:
    """Enqueues `strategy`'s next diff job (after `previous_work_item_id`) and records it on the
    strategy; returns the strategy as stored. Idempotent: a repeat meets the same job."""
    item = diff_job(strategy, max_attempts=max_attempts)
    queued = await queue.enqueue(item, diff_key(strategy.strategy_id, previous_work_item_id))
    return await store.attach_work_item(strategy.strategy_id, queued.job_id)
