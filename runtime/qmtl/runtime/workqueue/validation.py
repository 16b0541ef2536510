"""Checks on what callers hand the queue, shared by both adapters so both refuse alike.

Every check runs before any state changes (before any script is sent to Redis), so a refused
call leaves the queue as it was. The limits are documented in docs/operations/redis.md,
"Limits"; change them there too.
"""

from __future__ import annotations

from qmtl.work.v1 import work_item_pb2

from .errors import BatchTooLargeError, InvalidDurationError, InvalidJobError

MAX_IDEMPOTENCY_KEY_LENGTH = 1024

MIN_DURATION = 0.001
"""Deadlines and delays are kept in whole milliseconds; anything shorter would round to 0."""
MIN_LEASE_TTL = MIN_DURATION
MAX_LEASE_TTL = 24 * 3600.0
"""A worker that needs longer extends its lease; a crashed worker holds a job at most this long."""
MAX_BACKOFF = 24 * 3600.0
"""A retry further away than a day is a dead job in disguise; dead-letter it instead."""
MAX_RETENTION = 365 * 24 * 3600.0
"""Ceiling of idempotency_window and completed_retention: years-long TTLs are a unit mistake."""

MAX_BATCH = 10_000
"""Most entries per enqueue_many / lease_many / complete_many call, and most jobs one reap or
promote step touches. One call is one Lua script, and Redis serves no one else while it runs
(0.15 to 0.6 s at this size on a busy 2-core machine); the scripts have no size limit of their
own (they send variadic commands in slices)."""

MAX_ATTEMPTS = 2**31 - 1
"""WorkItem.max_attempts is an int32."""


def check_duration(name: str, seconds: object, minimum: float, maximum: float) -> float:
    """`seconds` if it is a real number within [minimum, maximum]; NaN and infinities never are.

    Typed `object` because values arrive from configuration and callers mypy never saw.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidDurationError(name, seconds, minimum, maximum)
    if not minimum <= seconds <= maximum:  # False for NaN, so NaN is refused too
        raise InvalidDurationError(name, seconds, minimum, maximum)
    return float(seconds)


def check_batch(call: str, size: int) -> None:
    if size > MAX_BATCH:
        raise BatchTooLargeError(call, size, MAX_BATCH)


def check_idempotency_key(key: str) -> None:
    if not key:
        raise InvalidJobError("an idempotency key is required to enqueue")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidJobError(
            f"idempotency key is {len(key)} characters; at most {MAX_IDEMPOTENCY_KEY_LENGTH}"
        )


def max_attempts_for(item: work_item_pb2.WorkItem, default: int) -> int:
    if item.max_attempts < 0:
        raise InvalidJobError(f"max_attempts must not be negative, got {item.max_attempts}")
    return item.max_attempts or default


def check_lease_ttl(lease_ttl: object) -> float:
    return check_duration("lease_ttl", lease_ttl, MIN_LEASE_TTL, MAX_LEASE_TTL)


def check_lease_request(worker_id: str, lease_ttl: float, count: int = 1) -> None:
    if not worker_id:
        raise InvalidJobError("a worker id is required to lease")
    check_lease_ttl(lease_ttl)
    if count < 1:
        raise InvalidJobError(f"lease count must be at least 1, got {count}")
    check_batch("lease_many", count)
