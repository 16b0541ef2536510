"""When a typed client call is tried again, and how long it waits first.

Only idempotent rpcs are retried (GET bindings, or `idempotency_level` NO_SIDE_EFFECTS /
IDEMPOTENT in the schema): a retried POST could apply twice. Among their failures only those
the server marked `retryable` (or the catalogue does, for transport failures: E_UNAVAILABLE
when no connection could be made) are retried, with exponential backoff and jitter, and never
sooner than the error's `retry_after` (the server's Retry-After). A retry that could not finish
before the call's deadline is not started: the error is raised at once. Defaults and limits are
in docs/api/CLIENT.md.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from qmtl.runtime.errors import ErrorCode, QmtlError

__all__ = ["NO_RETRY", "RetryPolicy"]


def _invalid(message: str) -> QmtlError:
    return QmtlError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, f"RetryPolicy: {message}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a client retries; give one per client or per call.

    The n-th retry waits `min(max_backoff, initial_backoff * multiplier**(n-1))`, shortened
    by up to `jitter` of itself at random (so clients that failed together do not return
    together), and at least the error's `retry_after`. A server asking for a wait longer than
    `max_retry_after` is not retried. `sleep`, `async_sleep` and `random` are injectable for
    tests; `max_attempts` counts the first try (1 = never retry).
    """

    max_attempts: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)
    random: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise _invalid(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 0 <= self.initial_backoff <= self.max_backoff:
            raise _invalid("need 0 <= initial_backoff <= max_backoff")
        if self.multiplier < 1:
            raise _invalid(f"multiplier must be at least 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise _invalid(f"jitter must be within [0, 1], got {self.jitter}")
        if self.max_retry_after < 0:
            raise _invalid("max_retry_after must not be negative")

    def backoff(self, retry: int) -> float:
        """The jittered wait before the `retry`-th retry (1 for the first)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return base * (1 - self.jitter * self.random())

    def delay(
        self, attempt: int, error: QmtlError, *, idempotent: bool, remaining: float | None
    ) -> float | None:
        """Seconds to wait before trying again after `attempt` failed, or None: give up.

        `remaining` is the time left before the call's deadline (None: no deadline).
        """
        if not idempotent or not error.retryable or attempt >= self.max_attempts:
            return None
        wait = self.backoff(attempt)
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            wait = max(wait, error.retry_after)
        if remaining is not None and wait >= remaining:
            return None
        return wait


# One attempt only: for callers that retry at a level of their own.
NO_RETRY = RetryPolicy(max_attempts=1)
