"""Values that cross the WorkQueue port: settings, leases, outcomes and counts.

Every duration is in seconds (float) at the port; the adapters keep whole milliseconds
internally so that the in-memory and Redis adapters round time identically. Each one is bounded
(validation.py; docs/operations/redis.md, "Limits") and refused with InvalidDurationError outside
its bounds, at construction for settings and before anything is written for a call.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from qmtl.work.v1 import work_item_pb2, work_state_pb2

from .errors import InvalidJobError
from .validation import (
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    MAX_BATCH,
    MAX_RETENTION,
    MIN_DURATION,
    check_duration,
)

Clock = Callable[[], float]
"""Seconds since the Unix epoch; injected so tests can move time without sleeping."""

JitterSource = Callable[[], float]
"""A number in [0, 1) drawn per retry; injected so tests can pin the jitter."""


def to_ms(seconds: float) -> int:
    return int(seconds * 1000)


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Retry delay after the n-th failed attempt: min(cap, base * 2**(n-1)), shortened by jitter.

    The jitter removes up to `jitter` of the delay (0.5 -> somewhere in [d/2, d]) so that jobs
    failing together do not come back together, while never waiting longer than the cap.
    """

    base: float = 1.0
    cap: float = 300.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        check_duration("backoff base", self.base, MIN_DURATION, MAX_BACKOFF)
        check_duration("backoff cap", self.cap, self.base, MAX_BACKOFF)
        if not 0.0 <= self.jitter <= 1.0:  # False for NaN too
            raise InvalidJobError(f"backoff jitter must be within [0, 1], got {self.jitter!r}")

    def delay_ms(self, attempts: int, draw: float) -> int:
        """The delay after `attempts` attempts, `draw` in [0, 1); mirrored in lua/fail.lua."""
        exponent = min(max(attempts - 1, 0), 62)
        full = min(to_ms(self.cap), to_ms(self.base) * 2**exponent)
        return int(full * (1.0 - self.jitter * draw))


MAX_CALL_TIMEOUT = 60.0
"""Ceiling of QueueSettings.call_timeout: a longer wait hides an outage from workers and callers."""


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Policy shared by both adapters."""

    idempotency_window: float = 24 * 3600.0
    """How long an idempotency key keeps returning the job it first created."""
    default_max_attempts: int = 5
    """Attempts allowed when the WorkItem does not set `max_attempts`."""
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    completed_retention: float = 7 * 24 * 3600.0
    """How long a COMPLETED job stays readable by get()."""
    dead_retention: float = 7 * 24 * 3600.0
    """How long a DEAD job stays for get() and redrive() before the reaper purges it (with its
    idempotency claim); purge_dead() may remove it sooner."""
    call_timeout: float = 5.0
    """Longest one Redis call may take before it fails with QueueUnavailableError (retryable).
    Only the Redis adapter talks to a server; the in-memory adapter ignores it."""
    reap_batch: int = 500
    """Most expired leases one reap call reclaims (it keeps each script call short)."""
    promote_batch: int = 100
    """Most due retries one lease call moves from delayed to ready."""

    def __post_init__(self) -> None:
        # Bounded so that every derived millisecond value stays an exact integer in Lua's
        # doubles and a valid protobuf Timestamp; docs/operations/redis.md, "Limits".
        check_duration("idempotency_window", self.idempotency_window, MIN_DURATION, MAX_RETENTION)
        check_duration("completed_retention", self.completed_retention, MIN_DURATION, MAX_RETENTION)
        if not 1 <= self.default_max_attempts <= MAX_ATTEMPTS:
            raise InvalidJobError(
                f"default_max_attempts must be within [1, {MAX_ATTEMPTS}], "
                f"got {self.default_max_attempts}"
            )
        # A duplicate enqueue answers with a job id; get() on that id must still find the job.
        if self.completed_retention < self.idempotency_window:
            raise InvalidJobError("completed_retention must be at least the idempotency_window")
        for name, size in (("reap_batch", self.reap_batch), ("promote_batch", self.promote_batch)):
            if not 1 <= size <= MAX_BATCH:
                raise InvalidJobError(f"{name} must be within [1, {MAX_BATCH}], got {size}")
        check_duration("dead_retention", self.dead_retention, MIN_DURATION, MAX_RETENTION)
        check_duration("call_timeout", self.call_timeout, MIN_DURATION, MAX_CALL_TIMEOUT)


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    job_id: str
    created: bool
    """False when the idempotency key already named a job within the window."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One worker's exclusive, time-limited hold on one job."""

    job_id: str
    token: str
    """Proves the hold; complete, fail, extend and release must present it."""
    deadline: float
    """When the lease becomes reclaimable by the reaper (epoch seconds, queue clock)."""
    item: work_item_pb2.WorkItem
    """The job as the queue sees it now: state LEASED, attempts, lease_owner, lease_deadline."""

    @property
    def attempt(self) -> int:
        return self.item.attempts


class CompleteOutcome(enum.Enum):
    """Per-job answer of complete_many (complete() raises instead of returning the last two)."""

    COMPLETED = "completed"
    ALREADY_COMPLETED = "already_completed"
    """The same lease completed it before; nothing changed."""
    LEASE_LOST = "lease_lost"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class Completion:
    job_id: str
    token: str
    result: bytes = b""


@dataclass(frozen=True, slots=True)
class CompletedAndLeased:
    """What complete_and_lease did: the job in hand's outcome, then the next lease (or None)."""

    outcome: CompleteOutcome
    next_lease: Lease | None


@dataclass(frozen=True, slots=True)
class FailedAndLeased:
    """What fail_and_lease did: the state fail() would return (DELAYED or DEAD), or None with
    `outcome` LEASE_LOST / NOT_FOUND when the job was not this lease's to fail; then the next
    lease (or None)."""

    state: work_state_pb2.WorkState.ValueType | None
    outcome: CompleteOutcome | None
    next_lease: Lease | None


@dataclass(frozen=True, slots=True)
class Reaped:
    """What one reap call did with the expired leases it found."""

    returned: int = 0
    """Put back to READY, keeping their place in line."""
    dead_lettered: int = 0
    """Out of attempts: moved to DEAD."""

    @property
    def total(self) -> int:
        return self.returned + self.dead_lettered


@dataclass(frozen=True, slots=True)
class QueueStats:
    ready: int
    leased: int
    delayed: int
    """Waiting for a retry backoff; a due retry counts here until a lease promotes it."""
    dead: int
    """In the dead letter, awaiting redrive or purge. A constant-time count (ZCARD), so cheap
    enough to poll as a metric; alert when it grows."""


class RedriveScope(enum.Enum):
    """`redrive(ALL_DEAD)`: every job that is DEAD when the call starts."""

    ALL_DEAD = "all_dead"


ALL_DEAD = RedriveScope.ALL_DEAD


@dataclass(frozen=True, slots=True)
class Redriven:
    """What one redrive call did, id by id. Ids that could not be redriven are reported here
    rather than raised, so one stale id does not fail the rest of a batch."""

    redriven: tuple[str, ...] = ()
    """Moved from DEAD to READY with attempts reset, in the order they will be leased."""
    not_dead: tuple[str, ...] = ()
    """Known jobs in another state (READY, LEASED, DELAYED, COMPLETED): left as they are."""
    not_found: tuple[str, ...] = ()
    """No such job: never enqueued, or already purged."""

    @property
    def count(self) -> int:
        return len(self.redriven)
