"""Accumulates one sweep's GcReport: processed and skipped queues with per-tag totals."""

from __future__ import annotations

from typing import TypeAlias

from qmtl.dag.v1 import queue_lifecycle_pb2
from qmtl.dagmanager.v1 import gc_messages_pb2

ARCHIVE = queue_lifecycle_pb2.QUEUE_LIFECYCLE_ACTION_ARCHIVE
SkipReason: TypeAlias = gc_messages_pb2.GcSkipReason.ValueType
Action: TypeAlias = queue_lifecycle_pb2.QueueLifecycleAction.ValueType
ArchiveStatus: TypeAlias = queue_lifecycle_pb2.ArchiveStatus.ValueType


class ReportBuilder:
    def __init__(self, *, dry_run: bool, started_at: float) -> None:
        self.report = gc_messages_pb2.GcReport(dry_run=dry_run)
        self.report.started_at.FromNanoseconds(_nanos(started_at))

    def observe(self, observed: int, candidates: int) -> None:
        self.report.observed = observed
        self.report.candidates = candidates

    def processed(
        self,
        queue: str,
        gc_tag: str,
        action: Action,
        archive_status: ArchiveStatus,
        age: float,
    ) -> None:
        item = self.report.processed.add(
            queue=queue, gc_tag=gc_tag, action=action, archive_status=archive_status
        )
        item.age.FromNanoseconds(_nanos(age))
        for counts in (self.report.actions, self.report.by_tag[gc_tag]):
            if action == ARCHIVE:
                counts.archive += 1
            else:
                counts.drop += 1

    def skipped(self, queue: str, gc_tag: str, reason: SkipReason, age: float) -> None:
        item = self.report.skipped.add(queue=queue, gc_tag=gc_tag, reason=reason)
        item.age.FromNanoseconds(_nanos(age))
        self.report.actions.skip += 1
        self.report.by_tag[gc_tag].skip += 1

    def finish(self, finished_at: float) -> gc_messages_pb2.GcReport:
        self.report.finished_at.FromNanoseconds(_nanos(finished_at))
        return self.report


def _nanos(seconds: float) -> int:
    return round(seconds * 1_000_000_000)
