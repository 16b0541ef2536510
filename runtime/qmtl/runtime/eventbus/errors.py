"""The event bus's typed errors.

`retryable` says whether the same call, repeated after a backoff, may succeed: a broker that
is down or electing a leader (retryable), versus a topic that does not exist or an event that
cannot be sent as it is (not retryable). A publish that raised may still have delivered some of
its events: the consumers dedupe by `Event.id` (docs/operations/kafka.md, "Dedupe").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from qmtl.runtime.port_errors import PortError

Operation = Literal["publish", "subscribe", "commit", "dead_letter", "connect"]


class EventBusError(PortError):
    """Root of every error an EventBus raises: the broker failed `operation` on `topics`."""

    default_code = "E_UNAVAILABLE"
    default_retryable = True

    def __init__(
        self,
        message: str,
        *,
        operation: Operation,
        topics: Sequence[str] = (),
        retryable: bool = True,
        attempts: int = 1,
        code: str | None = None,
        field: str = "",
    ) -> None:
        super().__init__(message, code=code, field=field, retryable=retryable)
        self.operation: Operation = operation
        self.topics = tuple(topics)
        # How many times the adapter tried before giving up (its own retries included).
        self.attempts = attempts

    def details(self) -> dict[str, Any]:
        details = super().details()
        details["operation"] = self.operation
        if self.topics:
            details["topics"] = list(self.topics)
        details["attempts"] = self.attempts
        return details


class InvalidEventError(EventBusError):
    """An event that cannot be published as it is (no id, no subject, no type) or a topic name
    the bus refuses. Never retryable: the same input fails the same way."""

    def __init__(self, message: str, *, field: str, topic: str = "") -> None:
        super().__init__(
            message,
            operation="publish",
            topics=(topic,) if topic else (),
            retryable=False,
            code="E_VALIDATION",
            field=field,
        )
