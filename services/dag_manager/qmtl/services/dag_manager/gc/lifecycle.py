"""The QueueLifecycle event GC publishes for each queue it drops or archives."""

from __future__ import annotations

from collections.abc import Callable

from qmtl.dag.v1 import queue_lifecycle_pb2
from qmtl.events.v1 import event_pb2, queue_events_pb2

from ..events import make_event
from .report import ARCHIVE, Action, ArchiveStatus

DROP = queue_lifecycle_pb2.QUEUE_LIFECYCLE_ACTION_DROP
NOT_ARCHIVED = queue_lifecycle_pb2.ARCHIVE_STATUS_UNSPECIFIED
ARCHIVED = queue_lifecycle_pb2.ARCHIVE_STATUS_ARCHIVED
MISSING_CLIENT = queue_lifecycle_pb2.ARCHIVE_STATUS_MISSING_CLIENT

# Why GC acted; the only reason this sweep has.
REASON_TTL_EXPIRED = "orphan_ttl_expired"
# A queue is dropped once in its life, so its lifecycle record has one version.
LIFECYCLE_VERSION = 1


def lifecycle_event(
    *,
    topic: str,
    gc_tag: str,
    interval: int,
    created_at: float,
    action: Action,
    archive_status: ArchiveStatus,
    source: str,
    correlation_id: str,
    clock: Callable[[], float],
) -> event_pb2.Event:
    action_name = "archive" if action == ARCHIVE else "drop"
    payload = queue_events_pb2.QueueLifecycle(
        queue=topic,
        action=action,
        reason=REASON_TTL_EXPIRED,
        gc_tag=gc_tag,
        interval=interval,
        archive_status=archive_status,
        version=LIFECYCLE_VERSION,
        etag=f"ql:{topic}:{action_name}:{REASON_TTL_EXPIRED}:{LIFECYCLE_VERSION}",
    )
    # The node (and so the topic name) can come back after a drop and be dropped again; its
    # creation time tells the two drops apart, so consumers deduplicate only true repeats.
    created_ms = int(created_at * 1000)
    return make_event(
        "queue_lifecycle",
        payload,
        subject=f"queues/{topic}",
        idempotency_key=f"queue_lifecycle:{topic}:{created_ms}:{action_name}",
        source=source,
        correlation_id=correlation_id,
        clock=clock,
    )
