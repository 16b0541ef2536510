"""The work queue's typed errors: one root, each with a stable code and a `retryable` flag.

`retryable` answers one question for the caller: may the same call succeed if repeated
unchanged after a backoff? A worker uses it to choose between retrying and giving up, and
`to_error_detail()` turns any of them into the platform's single error body.
"""

from __future__ import annotations

from typing import ClassVar

from qmtl.common.v1 import error_pb2

# Codes the queue itself writes into a job's `error`. ErrorDetail.code is an open string set;
# these are not in qmtl.common.v1.ErrorCode yet.
LEASE_EXPIRED = "E_LEASE_EXPIRED"
UNDECODABLE_PAYLOAD = "E_UNDECODABLE_PAYLOAD"
UNKNOWN_WORK_TYPE = "E_UNKNOWN_WORK_TYPE"
HANDLER_CRASHED = "E_INTERNAL"


class WorkQueueError(Exception):
    """Root of every error the work queue raises."""

    default_code: ClassVar[str] = "E_INTERNAL"
    default_retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.retryable = self.default_retryable if retryable is None else retryable

    def to_error_detail(self) -> error_pb2.ErrorDetail:
        return error_pb2.ErrorDetail(code=self.code, message=self.message, retryable=self.retryable)


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
