"""The embedded WorkQueue: one process, no server, same semantics as the Redis adapter.

For demos and unit tests. Atomicity comes from asyncio: no method awaits between reading and
writing state, so each call is one indivisible step for every other coroutine on the loop.
Nothing survives the process, which is why the production profile never picks it.
"""

from __future__ import annotations

import heapq
import random
import time
import uuid
from collections import deque
from collections.abc import Sequence

from qmtl.common.v1 import error_pb2
from qmtl.runtime import metrics
from qmtl.work.v1 import work_item_pb2, work_state_pb2

from .dead_letter import RedriveTally, dead_age_ms, redrive_ids
from .errors import LEASE_EXPIRED, IdempotencyConflictError, JobNotFoundError, LeaseLostError
from .job_record import (
    COMPLETED,
    DEAD,
    DELAYED,
    LEASED,
    READY,
    Entry,
    JobRecord,
    UndecodableItem,
    decode_item,
    leased_view,
    prepare_entries,
    undecodable_error,
)
from .model import (
    ALL_DEAD,
    Clock,
    CompletedAndLeased,
    CompleteOutcome,
    Completion,
    EnqueueResult,
    FailedAndLeased,
    JitterSource,
    Lease,
    QueueSettings,
    QueueStats,
    Reaped,
    Redriven,
    RedriveScope,
    to_ms,
)
from .validation import check_batch, check_lease_request, check_lease_ttl

_LEASE_EXPIRED_RETRY = error_pb2.ErrorDetail(
    code=LEASE_EXPIRED,
    message="the lease expired before its worker completed or failed the job; returned to ready",
    retryable=True,
).SerializeToString()
_LEASE_EXPIRED_DEAD = error_pb2.ErrorDetail(
    code=LEASE_EXPIRED,
    message="the lease expired on the last allowed attempt; dead-lettered",
    retryable=False,
).SerializeToString()


class InMemoryWorkQueue:
    def __init__(
        self,
        settings: QueueSettings | None = None,
        *,
        clock: Clock = time.time,
        jitter: JitterSource = random.random,
    ) -> None:
        self._settings = settings or QueueSettings()
        self._clock = clock
        self._jitter = jitter
        self._jobs: dict[str, JobRecord] = {}
        self._seq = 0
        # Heaps keep order; the member dicts say which heap entries are still current.
        self._ready_heap: list[tuple[int, str]] = []
        self._ready: dict[str, int] = {}
        self._delayed_heap: list[tuple[int, int, str]] = []
        self._delayed: dict[str, int] = {}
        self._leased: dict[str, int] = {}
        self._dead: dict[str, int] = {}
        self._idempotency: dict[str, tuple[int, str, str]] = {}
        """key -> (expires_ms, job id, item fingerprint)"""
        self._expiries: deque[tuple[int, str, str]] = deque()

    def _now_ms(self) -> int:
        return to_ms(self._clock())

    # -- enqueue -------------------------------------------------------------------------------

    async def enqueue(self, item: work_item_pb2.WorkItem, idempotency_key: str) -> EnqueueResult:
        (result,) = await self.enqueue_many([(item, idempotency_key)])
        return result

    async def enqueue_many(
        self, entries: Sequence[tuple[work_item_pb2.WorkItem, str]]
    ) -> list[EnqueueResult]:
        prepared = prepare_entries(entries, self._settings.default_max_attempts)
        now = self._now_ms()
        self._forget_expired(now)
        window = to_ms(self._settings.idempotency_window)
        # Every entry is answered before anything is written, so a conflict anywhere refuses
        # the whole batch. `claims`: key -> (job id, fingerprint, already stored?).
        claims: dict[str, tuple[str, str, bool]] = {}
        results = []
        for index, entry in enumerate(prepared):
            known = claims.get(entry.key)
            if known is None:
                stored = self._idempotency.get(entry.key)
                if stored is not None and stored[0] > now:
                    known = claims[entry.key] = (stored[1], stored[2], True)
            if known is None:
                job_id = str(uuid.uuid4())
                claims[entry.key] = (job_id, entry.item.fingerprint, False)
                results.append(EnqueueResult(job_id, created=True))
            elif known[1] != entry.item.fingerprint:
                raise IdempotencyConflictError(entry.key, known[0] if known[2] else None, index)
            else:
                results.append(EnqueueResult(known[0], created=False))
        for entry, result in zip(prepared, results, strict=True):
            if result.created:
                self._create(entry, result.job_id, now, window)
        return results

    def _create(self, entry: Entry, job_id: str, now: int, window: int) -> None:
        self._seq += 1
        self._jobs[job_id] = JobRecord(
            job_id=job_id,
            item=entry.item.stored_bytes(job_id, entry.key),
            state=READY,
            seq=self._seq,
            max_attempts=entry.max_attempts,
            created_ms=now,
            updated_ms=now,
        )
        self._push_ready(job_id, self._seq)
        self._idempotency[entry.key] = (now + window, job_id, entry.item.fingerprint)
        self._expiries.append((now + window, "key", entry.key))

    def _forget_expired(self, now: int) -> None:
        """Drops lapsed idempotency keys and completed jobs past retention (Redis TTLs do this)."""
        while self._expiries and self._expiries[0][0] <= now:
            _, kind, name = self._expiries.popleft()
            if kind == "key":
                known = self._idempotency.get(name)
                if known is not None and known[0] <= now:
                    del self._idempotency[name]
            else:
                job = self._jobs.get(name)
                if job is not None and job.state == COMPLETED:
                    del self._jobs[name]

    # -- lease ---------------------------------------------------------------------------------

    async def lease(self, worker_id: str, lease_ttl: float) -> Lease | None:
        leases = await self.lease_many(worker_id, lease_ttl, 1)
        return leases[0] if leases else None

    async def lease_many(self, worker_id: str, lease_ttl: float, count: int) -> list[Lease]:
        check_lease_request(worker_id, lease_ttl, count)
        leases: list[Lease] = []
        while len(leases) < count:
            # Undecodable jobs are dead-lettered and do not count, so keep leasing past them.
            batch, undecodable = self._take(worker_id, lease_ttl, count - len(leases))
            leases.extend(batch)
            for job_id, token, reason in undecodable:
                await self.fail(job_id, token, undecodable_error(job_id, reason), retryable=False)
            if not undecodable:
                break
        return leases

    def _take(
        self, worker_id: str, lease_ttl: float, count: int
    ) -> tuple[list[Lease], list[tuple[str, str, str]]]:
        token_prefix = f"{worker_id}:{uuid.uuid4().hex[:16]}"
        now = self._now_ms()
        self._promote_due(now)
        deadline = now + to_ms(lease_ttl)
        leases: list[Lease] = []
        undecodable: list[tuple[str, str, str]] = []
        while len(leases) + len(undecodable) < count and self._ready_heap:
            seq, job_id = heapq.heappop(self._ready_heap)
            if self._ready.get(job_id) != seq:
                continue
            del self._ready[job_id]
            job = self._jobs[job_id]
            token = f"{token_prefix}.{len(leases) + len(undecodable) + 1}"
            job.attempts += 1
            job.state = LEASED
            job.token = token
            job.deadline_ms = deadline
            job.updated_ms = now
            self._leased[job_id] = deadline
            try:
                item = decode_item(job.item)
            except UndecodableItem as exc:
                undecodable.append((job_id, token, str(exc)))
                continue
            view = leased_view(
                item,
                attempts=job.attempts,
                owner=worker_id,
                deadline_ms=deadline,
                created_ms=job.created_ms,
                now_ms=now,
            )
            leases.append(Lease(job_id, token, deadline / 1000, view))
        return leases, undecodable

    def _promote_due(self, now: int) -> None:
        promoted = 0
        heap = self._delayed_heap
        while heap and heap[0][0] <= now and promoted < self._settings.promote_batch:
            available_at, seq, job_id = heapq.heappop(heap)
            if self._delayed.get(job_id) != available_at:
                continue
            del self._delayed[job_id]
            job = self._jobs[job_id]
            job.state = READY
            job.updated_ms = now
            self._push_ready(job_id, seq)
            promoted += 1

    def _push_ready(self, job_id: str, seq: int) -> None:
        self._ready[job_id] = seq
        heapq.heappush(self._ready_heap, (seq, job_id))

    # -- settle --------------------------------------------------------------------------------

    def _job(self, job_id: str) -> JobRecord:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(f"no job {job_id}")
        return job

    def _end_lease(self, job: JobRecord, how: str, state: int, now: int) -> None:
        self._leased.pop(job.job_id, None)
        job.state = state
        job.ended = how
        job.updated_ms = now

    async def extend(self, job_id: str, lease_token: str, lease_ttl: float) -> float:
        check_lease_ttl(lease_ttl)
        job = self._job(job_id)
        if job.state != LEASED or job.token != lease_token:
            raise LeaseLostError(f"lease {lease_token} no longer holds job {job_id}")
        now = self._now_ms()
        job.deadline_ms = now + to_ms(lease_ttl)
        job.updated_ms = now
        self._leased[job_id] = job.deadline_ms
        return job.deadline_ms / 1000

    async def complete(self, job_id: str, lease_token: str, result: bytes) -> bool:
        (outcome,) = await self.complete_many([Completion(job_id, lease_token, result)])
        if outcome is CompleteOutcome.NOT_FOUND:
            raise JobNotFoundError(f"no job {job_id}")
        if outcome is CompleteOutcome.LEASE_LOST:
            raise LeaseLostError(f"lease {lease_token} no longer holds job {job_id}")
        return outcome is CompleteOutcome.COMPLETED

    async def complete_many(self, completions: Sequence[Completion]) -> list[CompleteOutcome]:
        check_batch("complete_many", len(completions))
        now = self._now_ms()
        retention = to_ms(self._settings.completed_retention)
        outcomes = []
        for entry in completions:
            job = self._jobs.get(entry.job_id)
            if job is None:
                outcomes.append(CompleteOutcome.NOT_FOUND)
            elif job.token != entry.token:
                outcomes.append(CompleteOutcome.LEASE_LOST)
            elif job.state == LEASED:
                self._end_lease(job, "complete", COMPLETED, now)
                job.result = entry.result
                job.finished_ms = now
                self._expiries.append((now + retention, "job", job.job_id))
                outcomes.append(CompleteOutcome.COMPLETED)
            elif job.state == COMPLETED:
                outcomes.append(CompleteOutcome.ALREADY_COMPLETED)
            else:
                outcomes.append(CompleteOutcome.LEASE_LOST)
        return outcomes

    async def fail(
        self,
        job_id: str,
        lease_token: str,
        error: error_pb2.ErrorDetail,
        retryable: bool,
    ) -> work_state_pb2.WorkState.ValueType:
        job = self._job(job_id)
        if job.token != lease_token:
            raise LeaseLostError(f"lease {lease_token} no longer holds job {job_id}")
        if job.state != LEASED:
            if job.ended == "fail":
                return DEAD if job.state == DEAD else DELAYED
            raise LeaseLostError(f"lease {lease_token} no longer holds job {job_id}")
        now = self._now_ms()
        job.error = error.SerializeToString()
        if retryable and job.attempts < job.max_attempts:
            available_at = now + self._settings.backoff.delay_ms(job.attempts, self._jitter())
            self._end_lease(job, "fail", DELAYED, now)
            job.available_at_ms = available_at
            self._delayed[job_id] = available_at
            heapq.heappush(self._delayed_heap, (available_at, job.seq, job_id))
            return DELAYED
        self._end_lease(job, "fail", DEAD, now)
        job.finished_ms = now
        self._dead[job_id] = now
        return DEAD

    async def complete_and_lease(
        self, job_id: str, lease_token: str, result: bytes, worker_id: str, lease_ttl: float
    ) -> CompletedAndLeased:
        # No await between the two steps, so no other caller runs in between: atomic here.
        check_lease_request(worker_id, lease_ttl, 1)
        (outcome,) = await self.complete_many([Completion(job_id, lease_token, result)])
        return CompletedAndLeased(outcome, await self.lease(worker_id, lease_ttl))

    async def fail_and_lease(
        self,
        job_id: str,
        lease_token: str,
        error: error_pb2.ErrorDetail,
        retryable: bool,
        worker_id: str,
        lease_ttl: float,
    ) -> FailedAndLeased:
        check_lease_request(worker_id, lease_ttl, 1)
        state: work_state_pb2.WorkState.ValueType | None = None
        outcome: CompleteOutcome | None = None
        try:
            state = await self.fail(job_id, lease_token, error, retryable)
        except LeaseLostError:
            outcome = CompleteOutcome.LEASE_LOST
        except JobNotFoundError:
            outcome = CompleteOutcome.NOT_FOUND
        return FailedAndLeased(state, outcome, await self.lease(worker_id, lease_ttl))

    async def release(self, job_id: str, lease_token: str) -> None:
        job = self._job(job_id)
        if job.token != lease_token:
            raise LeaseLostError(f"lease {lease_token} no longer holds job {job_id}")
        if job.state != LEASED:
            if job.ended == "release":
                return
            raise LeaseLostError(f"lease {lease_token} no longer holds job {job_id}")
        self._end_lease(job, "release", READY, self._now_ms())
        job.attempts -= 1
        self._push_ready(job_id, job.seq)

    # -- reaper --------------------------------------------------------------------------------

    async def reap_expired(self) -> Reaped:
        now = self._now_ms()
        expired = sorted(
            (deadline, job_id) for job_id, deadline in self._leased.items() if deadline <= now
        )[: self._settings.reap_batch]
        returned = dead = 0
        for _, job_id in expired:
            job = self._jobs[job_id]
            if job.attempts >= job.max_attempts:
                self._end_lease(job, "reap", DEAD, now)
                job.error = _LEASE_EXPIRED_DEAD
                job.finished_ms = now
                self._dead[job_id] = now
                dead += 1
            else:
                self._end_lease(job, "reap", READY, now)
                job.error = _LEASE_EXPIRED_RETRY
                self._push_ready(job_id, job.seq)
                returned += 1
        metrics.count_reaped(returned, dead)
        return Reaped(returned=returned, dead_lettered=dead)

    # -- reads ---------------------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        return QueueStats(
            ready=len(self._ready),
            leased=len(self._leased),
            delayed=len(self._delayed),
            dead=len(self._dead),
        )

    async def get(self, job_id: str) -> work_item_pb2.WorkItem | None:
        job = self._jobs.get(job_id)
        return None if job is None else job.to_work_item()

    # -- dead letter (admin) --------------------------------------------------------------------

    async def redrive(self, job_ids: Sequence[str] | RedriveScope) -> Redriven:
        now = self._now_ms()
        if job_ids is ALL_DEAD:
            # Oldest death first, ties by id: the order of Redis's ZRANGEBYSCORE on `dead`.
            oldest_first = sorted((died, job_id) for job_id, died in self._dead.items())
            return Redriven(redriven=tuple(self._redrive(jid, now) for _, jid in oldest_first))
        tally = RedriveTally()
        for job_id in redrive_ids(job_ids):
            job = self._jobs.get(job_id)
            dead = job is not None and job.state == DEAD
            if dead:
                self._redrive(job_id, now)
            tally.add(job_id, redriven=dead, found=job is not None)
        return tally.result()

    def _redrive(self, job_id: str, now: int) -> str:
        """DEAD -> READY at the back of the line, attempts reset; mirrored in lua/redrive.lua."""
        job = self._jobs[job_id]
        del self._dead[job_id]
        self._seq += 1
        job.seq = self._seq
        job.state = READY
        job.attempts = 0
        job.token = ""
        job.ended = "redrive"
        job.finished_ms = None
        job.updated_ms = now
        self._push_ready(job_id, job.seq)
        return job_id

    async def purge_dead(self, older_than: float | None = None) -> int:
        cutoff = self._now_ms() - dead_age_ms(older_than, self._settings)
        doomed = [job_id for job_id, died in self._dead.items() if died <= cutoff]
        for job_id in doomed:
            del self._dead[job_id]
            job = self._jobs.pop(job_id)
            try:
                key = decode_item(job.item).idempotency_key
            except UndecodableItem:
                continue  # its claim, if any, lapses with the idempotency window
            claim = self._idempotency.get(key)
            if claim is not None and claim[1] == job_id:
                del self._idempotency[key]
        return len(doomed)

    async def aclose(self) -> None:
        return None
