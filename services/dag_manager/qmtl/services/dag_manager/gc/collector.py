"""GarbageCollector: one sweep drops the orphan queues whose policy's TTL + grace has passed.

A sweep, under a lock (one sweep at a time per collector):
1. observes up to `observe_limit` orphans, longest-orphaned first, and sorts each into
   skipped (within grace, or a GC tag without a policy) or candidate;
2. takes the first `batch_size` candidates (the rest wait for the next sweep), archives the
   sentinel ones if an archiver is configured (a failed archive skips the queue);
3. deletes them from the graph FIRST, with `GraphStore.delete_queues`, which deletes only what
   is still an orphan (a queue referenced again since step 1 is kept) and writes one
   QueueLifecycle per deleted queue into the outbox in the same transaction (the relay
   publishes it; docs/operations/outbox.md);
4. then deletes exactly the topics the store deleted from the broker. If the broker fails,
   the topics stay pending in this collector and every later sweep retries them first
   (deletes are idempotent); the node coming back (a diff re-created it, so its topic is live
   again) cancels its pending delete.
Store first, so the graph never names a queue whose topic is gone; the cost is a topic that
outlives its node until the broker delete succeeds. docs/operations/gc.md has the details.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from qmtl.dagmanager.v1 import gc_messages_pb2
from qmtl.events.v1 import event_pb2
from qmtl.runtime.graphstore import DeleteAnnouncements, GraphStoreError, Orphan, StoredNode
from qmtl.runtime.topicadmin import TopicAdmin, TopicAdminError, gc_tag_for

from ..events import DEFAULT_SOURCE
from ..relay import NoRelay, OutboxNotify, outbox_message
from .lifecycle import ARCHIVED, DROP, MISSING_CLIENT, NOT_ARCHIVED, lifecycle_event
from .policy import (
    DEFAULT_OBSERVE_LIMIT,
    DEFAULT_POLICIES,
    MAX_GC_BATCH,
    GcPolicy,
    check_observe_limit,
    effective_batch_size,
)
from .report import ARCHIVE, Action, ArchiveStatus, ReportBuilder

log = logging.getLogger(__name__)

WITHIN_GRACE = gc_messages_pb2.GC_SKIP_REASON_WITHIN_GRACE
UNKNOWN_POLICY = gc_messages_pb2.GC_SKIP_REASON_UNKNOWN_POLICY
ARCHIVE_FAILED = gc_messages_pb2.GC_SKIP_REASON_ARCHIVE_FAILED


class GcStore(Protocol):
    """The part of the GraphStore port a sweep uses (any GraphStore is one)."""

    async def orphans(self, older_than: float, limit: int = 1000) -> list[Orphan]: ...

    async def delete_queues(
        self, topics: Sequence[str], *, announce: DeleteAnnouncements | None = None
    ) -> list[str]: ...

    async def get_nodes(self, node_ids: Sequence[str]) -> dict[str, StoredNode]: ...


class Archiver(Protocol):
    """Writes an archive marker of `queue` (qmtl: an S3 object `{queue}-{YYYYmmddTHHMMSS}`)
    before a sentinel queue is dropped. Any exception means the archive failed."""

    async def archive(self, queue: str, at: float) -> None: ...


BrokerLoad = Callable[[], Awaitable[float]]


@dataclass(frozen=True, slots=True)
class DroppedQueue:
    """A queue a sweep removed from the graph (its topic may still be pending in the broker)."""

    topic: str
    node_id: str
    gc_tag: str
    tags: tuple[str, ...]
    interval: int


@dataclass(frozen=True, slots=True)
class GcOutcome:
    report: gc_messages_pb2.GcReport
    dropped: tuple[DroppedQueue, ...]
    """Removed from the graph by this sweep (none in a dry run), in report order."""
    broker_pending: tuple[str, ...]
    """Topics whose broker delete has failed so far (this sweep's or earlier); retried first
    by the next sweep."""
    broker_error: TopicAdminError | None
    """The broker's error if this sweep's topic delete failed."""

    @property
    def affected_tag_intervals(self) -> list[tuple[str, int]]:
        """Each (tag, interval) whose tag-query answer lost a queue, sorted: the caller
        refreshes (QueueUpdated) one answer per entry."""
        return sorted({(tag, q.interval) for q in self.dropped for tag in q.tags})


@dataclass(frozen=True, slots=True)
class _Candidate:
    orphan: Orphan
    gc_tag: str
    policy: GcPolicy
    age: float


@dataclass(frozen=True, slots=True)
class _Decision:
    candidate: _Candidate
    action: Action
    archive_status: ArchiveStatus


class GarbageCollector:
    def __init__(
        self,
        store: GcStore,
        topics: TopicAdmin,
        relay: OutboxNotify | None = None,
        *,
        policies: Mapping[str, GcPolicy] = DEFAULT_POLICIES,
        clock: Callable[[], float] = time.time,
        archiver: Archiver | None = None,
        broker_load: BrokerLoad | None = None,
        observe_limit: int = DEFAULT_OBSERVE_LIMIT,
        source: str = DEFAULT_SOURCE,
    ) -> None:
        check_observe_limit(observe_limit)
        self._store = store
        self._topics = topics
        self._relay = relay if relay is not None else NoRelay()
        self._policies = dict(policies)
        self._clock = clock
        self._archiver = archiver
        self._broker_load = broker_load
        self._observe_limit = observe_limit
        self._source = source
        self._lock = asyncio.Lock()
        # Dropped from the graph, topic not yet deleted from the broker (insertion ordered).
        self._pending: dict[str, _Decision] = {}

    @property
    def broker_pending(self) -> tuple[str, ...]:
        return tuple(self._pending)

    async def trigger(
        self, request: gc_messages_pb2.TriggerGcRequest, *, correlation_id: str = ""
    ) -> gc_messages_pb2.TriggerGcResponse:
        """The TriggerGc rpc's answer; use `sweep` to also get the dropped queues."""
        outcome = await self.sweep(
            dry_run=request.dry_run, batch_size=request.batch_size, correlation_id=correlation_id
        )
        return gc_messages_pb2.TriggerGcResponse(report=outcome.report)

    async def sweep(
        self, *, dry_run: bool = False, batch_size: int = 0, correlation_id: str = ""
    ) -> GcOutcome:
        """Runs one sweep (see the module doc). A dry run computes the same report without
        archiving, deleting or publishing anything.

        Raises QmtlError: E_VALIDATION for a `batch_size` outside 0..MAX_GC_BATCH, the store's
        mapped error (E_UNAVAILABLE when it is unreachable) if the graph cannot be read or
        written. Broker failures do not raise: see `GcOutcome.broker_error`.
        """
        async with self._lock:
            try:
                return await self._sweep(dry_run, batch_size, correlation_id)
            except GraphStoreError as exc:
                raise exc.to_qmtl_error() from exc

    async def _sweep(self, dry_run: bool, batch_size: int, correlation_id: str) -> GcOutcome:
        size = effective_batch_size(batch_size, await self._load())
        now = self._clock()
        builder = ReportBuilder(dry_run=dry_run, started_at=now)
        candidates = await self._observe(builder, now)
        decisions = await self._decide(candidates[:size], builder, dry_run, now)
        if dry_run:
            for decision in decisions:
                self._report_processed(builder, decision)
            return GcOutcome(builder.finish(self._clock()), (), self.broker_pending, None)

        # Written with the delete, for the queues it deletes: a crash after the commit
        # still announces them (the relay), a queue kept in use announces nothing.
        announce = {
            d.candidate.orphan.topic: outbox_message(self._event(d, correlation_id))
            for d in decisions
        }
        topics = list(announce)
        deleted = (
            set(await self._store.delete_queues(topics, announce=announce)) if topics else set()
        )
        if deleted:
            await self._relay.announced()
        dropped: list[DroppedQueue] = []
        for decision in decisions:
            orphan = decision.candidate.orphan
            if orphan.topic not in deleted:
                # Referenced again between observing and deleting: the grace did its job.
                log.info("gc: kept %s, it is in use again", orphan.topic)
                continue
            self._report_processed(builder, decision)
            self._pending[orphan.topic] = decision
            dropped.append(
                DroppedQueue(
                    orphan.topic,
                    orphan.node_id,
                    decision.candidate.gc_tag,
                    orphan.tags,
                    orphan.interval,
                )
            )
        broker_error = await self._flush_pending()
        report = builder.finish(self._clock())
        return GcOutcome(report, tuple(dropped), self.broker_pending, broker_error)

    async def _load(self) -> float | None:
        if self._broker_load is None:
            return None
        try:
            return await self._broker_load()
        except Exception:  # a metrics probe failing must not stop GC; assume the worst
            log.warning("gc: broker load probe failed, halving the batch", exc_info=True)
            return 1.0

    async def _observe(self, builder: ReportBuilder, now: float) -> list[_Candidate]:
        orphans = await self._store.orphans(older_than=0.0, limit=self._observe_limit)
        candidates: list[_Candidate] = []
        for orphan in orphans:
            gc_tag = gc_tag_for(orphan.topic, orphan.node_type)
            age = max(0.0, now - orphan.orphaned_since)
            policy = self._policies.get(gc_tag)
            if policy is None:
                builder.skipped(orphan.topic, gc_tag, UNKNOWN_POLICY, age)
            elif age < policy.threshold:
                builder.skipped(orphan.topic, gc_tag, WITHIN_GRACE, age)
            else:
                candidates.append(_Candidate(orphan, gc_tag, policy, age))
        builder.observe(len(orphans), len(candidates))
        return candidates

    async def _decide(
        self, batch: Sequence[_Candidate], builder: ReportBuilder, dry_run: bool, now: float
    ) -> list[_Decision]:
        decisions: list[_Decision] = []
        for candidate in batch:
            if not candidate.policy.archive:
                decisions.append(_Decision(candidate, DROP, NOT_ARCHIVED))
            elif self._archiver is None:
                # qmtl's rule: no archive client configured still drops the queue.
                decisions.append(_Decision(candidate, ARCHIVE, MISSING_CLIENT))
            elif dry_run:
                decisions.append(_Decision(candidate, ARCHIVE, NOT_ARCHIVED))
            elif await _archive(self._archiver, candidate.orphan.topic, now):
                decisions.append(_Decision(candidate, ARCHIVE, ARCHIVED))
            else:
                builder.skipped(
                    candidate.orphan.topic, candidate.gc_tag, ARCHIVE_FAILED, candidate.age
                )
        return decisions

    @staticmethod
    def _report_processed(builder: ReportBuilder, decision: _Decision) -> None:
        candidate = decision.candidate
        builder.processed(
            candidate.orphan.topic,
            candidate.gc_tag,
            decision.action,
            decision.archive_status,
            candidate.age,
        )

    async def _flush_pending(self) -> TopicAdminError | None:
        """Deletes the pending topics from the broker, in chunks (their events are already
        in the outbox, written with the graph delete)."""
        while self._pending:
            chunk = list(self._pending.items())[:MAX_GC_BATCH]
            live = await self._store.get_nodes([d.candidate.orphan.node_id for _, d in chunk])
            doomed: list[tuple[str, _Decision]] = []
            for topic, decision in chunk:
                back = live.get(decision.candidate.orphan.node_id)
                if back is not None and back.topic == topic:
                    # A diff re-created the node (same id, same topic name): the topic is live.
                    log.info("gc: %s is in use again, its broker delete is cancelled", topic)
                    del self._pending[topic]
                else:
                    doomed.append((topic, decision))
            try:
                await self._topics.delete_topics([topic for topic, _ in doomed])
            except TopicAdminError as exc:
                log.warning(
                    "gc: broker delete of %d topic(s) failed (%s); retried next sweep",
                    len(doomed),
                    exc.message,
                )
                return exc
            for topic, _ in doomed:
                del self._pending[topic]
        return None

    def _event(self, decision: _Decision, correlation_id: str) -> event_pb2.Event:
        orphan = decision.candidate.orphan
        return lifecycle_event(
            topic=orphan.topic,
            gc_tag=decision.candidate.gc_tag,
            interval=orphan.interval,
            created_at=orphan.created_at,
            action=decision.action,
            archive_status=decision.archive_status,
            source=self._source,
            correlation_id=correlation_id,
            clock=self._clock,
        )


async def _archive(archiver: Archiver, topic: str, now: float) -> bool:
    try:
        await archiver.archive(topic, now)
    except Exception:  # any archive client failure keeps the queue, never aborts the sweep
        log.warning("gc: archiving %s failed, the queue is kept", topic, exc_info=True)
        return False
    return True
