"""The WorkQueue port: what Gateway needs from a durable, leased, retried job queue.

Guarantees every adapter keeps (the contract suite in tests/contract checks both):
- enqueue is idempotent per key within `QueueSettings.idempotency_window`;
- a job is held by at most one lease at a time, handed out oldest first;
- only the token of the current lease can complete, fail, extend or release the job, and
  repeating one of those calls with the same token changes nothing;
- a lease whose deadline has passed may be reclaimed by `reap_expired` at any moment;
  until then its holder may still settle it;
- every state change is atomic, so any number of workers and reapers may run at once.

`redrive` and `purge_dead` are operator (admin) calls: internal-only wherever they are exposed,
never on a public route. Each job they touch moves atomically; a call over more than
`dead_letter.DEAD_LETTER_CHUNK` jobs runs in several atomic steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from qmtl.common.v1 import error_pb2
from qmtl.work.v1 import work_item_pb2, work_state_pb2

from .model import (
    CompletedAndLeased,
    CompleteOutcome,
    Completion,
    EnqueueResult,
    FailedAndLeased,
    Lease,
    QueueStats,
    Reaped,
    Redriven,
    RedriveScope,
)


class WorkQueue(Protocol):
    async def enqueue(self, item: work_item_pb2.WorkItem, idempotency_key: str) -> EnqueueResult:
        """Accepts `item` as a new READY job, or returns the job this key already created."""
        ...

    async def enqueue_many(
        self, entries: Sequence[tuple[work_item_pb2.WorkItem, str]]
    ) -> list[EnqueueResult]:
        """enqueue() for each (item, idempotency_key), in order, in one atomic step."""
        ...

    async def lease(self, worker_id: str, lease_ttl: float) -> Lease | None:
        """The oldest READY job (due retries first become READY), or None if there is none."""
        ...

    async def lease_many(self, worker_id: str, lease_ttl: float, count: int) -> list[Lease]:
        """Up to `count` of the oldest READY jobs, each under its own token."""
        ...

    async def extend(self, job_id: str, lease_token: str, lease_ttl: float) -> float:
        """Moves the lease deadline to now + lease_ttl and returns it; LeaseLostError if lost."""
        ...

    async def complete(self, job_id: str, lease_token: str, result: bytes) -> bool:
        """True if this call completed the job, False if this same lease already had.

        Raises LeaseLostError when the token no longer holds the job, JobNotFoundError when
        there is no such job.
        """
        ...

    async def complete_many(self, completions: Sequence[Completion]) -> list[CompleteOutcome]:
        """complete() for each entry in one atomic step, answering per job instead of raising."""
        ...

    async def fail(
        self,
        job_id: str,
        lease_token: str,
        error: error_pb2.ErrorDetail,
        retryable: bool,
    ) -> work_state_pb2.WorkState.ValueType:
        """Records `error` and ends the lease: DELAYED for a retry after backoff while attempts
        remain and `retryable`, else DEAD. Returns that state (also on a repeat)."""
        ...

    async def complete_and_lease(
        self, job_id: str, lease_token: str, result: bytes, worker_id: str, lease_ttl: float
    ) -> CompletedAndLeased:
        """complete(), then lease() for `worker_id`, in one atomic step (one round trip on
        Redis): a busy worker's steady state. Answers the completion's outcome instead of
        raising, since the next lease is taken either way."""
        ...

    async def fail_and_lease(
        self,
        job_id: str,
        lease_token: str,
        error: error_pb2.ErrorDetail,
        retryable: bool,
        worker_id: str,
        lease_ttl: float,
    ) -> FailedAndLeased:
        """fail(), then lease() for `worker_id`, in one atomic step; answers instead of
        raising, like complete_and_lease."""
        ...

    async def release(self, job_id: str, lease_token: str) -> None:
        """Gives the job back to READY at once, in its old place; the attempt is not charged."""
        ...

    async def reap_expired(self) -> Reaped:
        """Returns expired leases to READY (the attempt counts) or, when out of attempts, to DEAD.

        Safe to call from any number of workers at once: each expired lease is reclaimed once.
        """
        ...

    async def redrive(self, job_ids: Sequence[str] | RedriveScope) -> Redriven:
        """Moves DEAD jobs back to READY (behind the jobs already waiting) with attempts reset;
        `ALL_DEAD` takes every job dead when the call starts, oldest death first.

        The last error stays readable by get() until the job's next attempt ends. Ids that are
        unknown or not DEAD are reported in the answer, never raised, and left unchanged.
        """
        ...

    async def purge_dead(self, older_than: float | None = None) -> int:
        """Deletes the jobs that have been DEAD for at least `older_than` seconds (default:
        `QueueSettings.dead_retention`) and the idempotency claims still naming them, so their
        keys may be enqueued afresh. Returns how many jobs it deleted. The reaper calls it with
        the default every round: that is the dead-letter retention."""
        ...

    async def stats(self) -> QueueStats:
        """Jobs per state; each count is constant-time, so cheap enough to poll as a metric."""
        ...

    async def get(self, job_id: str) -> work_item_pb2.WorkItem | None:
        """The job as the queue sees it (state, attempts, lease, last error, result)."""
        ...

    async def aclose(self) -> None: ...
