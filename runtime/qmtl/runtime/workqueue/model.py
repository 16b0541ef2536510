"""Values that cross the WorkQueue port: settings, leases, outcomes and counts.

Every duration is in seconds (float) at the port; the adapters keep whole milliseconds
internally so that the in-memory and Redis adapters round time identically.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from qmtl.work.v1 import work_item_pb2

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
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("backoff needs 0 < base <= cap")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("backoff jitter must be within [0, 1]")

    def delay_ms(self, attempts: int, draw: float) -> int:
        """The delay after `attempts` attempts, `draw` in [0, 1); mirrored in lua/fail.lua."""
        exponent = min(max(attempts - 1, 0), 62)
        full = min(to_ms(self.cap), to_ms(self.base) * 2**exponent)
        return int(full * (1.0 - self.jitter * draw))


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Policy shared by both adapters."""

    idempotency_window: float = 24 * 3600.0
    """How long an idempotency key keeps returning the job it first created."""
    default_max_attempts: int = 5
    """Attempts allowed when the WorkItem does not set `max_attempts`."""
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    completed_retention: float = 7 * 24 * 3600.0
    """How long a COMPLETED job stays readable by get(); DEAD jobs stay until an operator acts."""
    reap_batch: int = 500
    """Most expired leases one reap call reclaims (it keeps each script call short)."""
    promote_batch: int = 100
    """Most due retries one lease call moves from delayed to ready."""

    def __post_init__(self) -> None:
        if self.idempotency_window <= 0:
            raise ValueError("idempotency_window must be positive")
        if self.default_max_attempts < 1:
            raise ValueError("default_max_attempts must be at least 1")
        # A duplicate enqueue answers with a job id; get() on that id must still find the job.
        if self.completed_retention < self.idempotency_window:
            raise ValueError("completed_retention must be at least the idempotency_window")
        if self.reap_batch < 1 or self.promote_batch < 1:
            raise ValueError("reap_batch and promote_batch must be at least 1")


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
