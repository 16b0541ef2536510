"""The work queue's typed errors: one root, each with a stable code and a `retryable` flag.

`retryable` answers one question for the caller: may the same call succeed if repeated
unchanged after a backoff? A worker uses it to choose between retrying and giving up,
`to_error_detail()` turns any of them into the platform's single error body, and
`to_qmtl_error()` into the `QmtlError` a service raises to answer with the code's HTTP status
(E_VALIDATION 422, E_IDEMPOTENCY_CONFLICT 409, ...).
"""

from __future__ import annotations

from typing import Any

from qmtl.runtime.port_errors import PortError

# Codes the queue itself writes into a job's `error`. ErrorDetail.code is an open string set;
# these are not in qmtl.common.v1.ErrorCode yet.
LEASE_EXPIRED = "E_LEASE_EXPIRED"
UNDECODABLE_PAYLOAD = "E_UNDECODABLE_PAYLOAD"
UNKNOWN_WORK_TYPE = "E_UNKNOWN_WORK_TYPE"
HANDLER_CRASHED = "E_INTERNAL"
# In the catalogue (ERROR_CODE_IDEMPOTENCY_CONFLICT, HTTP 409); raised, never stored in a job.
IDEMPOTENCY_CONFLICT = "E_IDEMPOTENCY_CONFLICT"


class WorkQueueError(PortError):
    """Root of every error the work queue raises."""


class QueueUnavailableError(WorkQueueError):
    """The backing store could not be reached or is not accepting writes right now."""

    default_code = "E_UNAVAILABLE"
    default_retryable = True


class LeaseLostError(WorkQueueError):
    """The lease token no longer holds the job: it was reclaimed, re-leased or settled."""

    default_code = "E_INVALID_STATE"


class JobNotFoundError(WorkQueueError):
    """No job has this id (never enqueued, or its retention ran out)."""

    default_code = "E_NOT_FOUND"


class InvalidJobError(WorkQueueError):
    """The caller passed something the queue cannot accept (empty key, bad limits)."""

    default_code = "E_VALIDATION"


class InvalidDurationError(InvalidJobError):
    """A duration (lease TTL, a QueueSettings window or delay) is not a number of seconds within
    its documented bounds (docs/operations/redis.md, "Limits"). NaN and infinities never are."""

    def __init__(self, name: str, value: object, minimum: float, maximum: float) -> None:
        super().__init__(
            f"{name} must be a number of seconds within [{minimum:g}, {maximum:g}], got {value!r}"
        )
        self.name = name
        self.value = value
        self.minimum = minimum
        self.maximum = maximum


class BatchTooLargeError(InvalidJobError):
    """A batched call (enqueue_many, lease_many, complete_many) over the per-call maximum.

    Refused before anything is written; split the batch and call again.
    """

    def __init__(self, call: str, size: int, limit: int) -> None:
        super().__init__(f"{call} takes at most {limit} entries per call, got {size}")
        self.call = call
        self.size = size
        self.limit = limit


class IdempotencyConflictError(WorkQueueError):
    """An idempotency key, still within its window, already names a job with a different item.

    Not retryable: the same call would meet the same job. `job_id` is that job, or None when
    the key's first use is earlier in the same enqueue_many batch (which wrote nothing). `index`
    is the refused entry's position in the batch (0 for enqueue).
    """

    default_code = IDEMPOTENCY_CONFLICT

    def __init__(self, idempotency_key: str, job_id: str | None, index: int) -> None:
        holder = f"job {job_id}" if job_id is not None else "an earlier entry of this batch"
        super().__init__(
            f"idempotency key {idempotency_key!r} already names {holder} with a different item"
        )
        self.idempotency_key = idempotency_key
        self.job_id = job_id
        self.index = index

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"idempotency_key": self.idempotency_key}
        if self.job_id is not None:
            details["job_id"] = self.job_id
        return details


class DurabilityError(WorkQueueError):
    """Redis would not keep accepted jobs across a restart, so the production profile refuses it.

    Not retryable: only an operator changing the server's configuration fixes it.
    """

    default_code = "E_UNAVAILABLE"


class JobFailedError(WorkQueueError):
    """Raised by a job handler to fail its job with a chosen code and retry decision.

    Any other exception from a handler counts as a retryable `E_INTERNAL` failure.
    """

    default_retryable = True
