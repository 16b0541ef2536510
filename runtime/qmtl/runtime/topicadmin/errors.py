"""The topic admin's typed errors, with the wire error each maps to.

`retryable` says whether repeating the same call after a backoff may succeed (a broker briefly
unreachable or electing a controller); the caller decides how often. `to_qmtl_error()` gives
what a service answers: E_QUEUE_CREATE_FAILED (503) when creating topics failed,
E_UNAVAILABLE (503) for deleting, listing or describing, E_VALIDATION (422) for an illegal
name or spec, E_INVALID_STATE (409) for a topic that exists with other settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from qmtl.runtime.port_errors import PortError

Operation = Literal["create", "delete", "list", "describe", "connect"]


class TopicAdminError(PortError):
    """Root of every error a TopicAdmin raises: the broker failed `operation` on `topics`."""

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
        default = "E_QUEUE_CREATE_FAILED" if operation == "create" else "E_UNAVAILABLE"
        super().__init__(message, code=code or default, field=field, retryable=retryable)
        self.operation: Operation = operation
        self.topics = tuple(topics)
        # How many times the adapter tried before giving up (its own retries included).
        self.attempts = attempts

    def details(self) -> dict[str, Any]:
        details = super().details()
        details["operation"] = self.operation
        if self.operation == "create":
            details["queue"] = ",".join(self.topics)
            details["attempts"] = self.attempts
        elif self.topics:
            details["queues"] = list(self.topics)
        return details


class InvalidTopicError(TopicAdminError):
    """A topic name the broker would refuse, or a spec with impossible sizes. Never retryable:
    the same input fails the same way."""

    def __init__(
        self, message: str, *, field: str, topic: str, operation: Operation = "create"
    ) -> None:
        # `field` is a path into the offending input, e.g. "specs[2].name".
        super().__init__(
            message,
            operation=operation,
            topics=(topic,),
            retryable=False,
            code="E_VALIDATION",
            field=field,
        )

    def details(self) -> dict[str, Any]:
        return {"field": self.field}


class TopicConfigMismatchError(TopicAdminError):
    """A topic already exists with other settings than the ones wanted (partitions,
    replication beyond clamping, retention, cleanup policy...). Never retryable: the broker
    keeps the topic as it is until an operator changes or deletes it. `expected` and `actual`
    hold, per differing setting, the wanted and the broker's value."""

    def __init__(
        self, topic: str, *, expected: Mapping[str, str], actual: Mapping[str, str | None]
    ) -> None:
        differences = ", ".join(f"{key} {expected[key]} != {actual[key]}" for key in expected)
        super().__init__(
            f"topic {topic!r} exists with other settings (wanted != actual: {differences})",
            operation="create",
            topics=(topic,),
            retryable=False,
            code="E_INVALID_STATE",
        )
        self.topic = topic
        self.expected = dict(expected)
        self.actual = dict(actual)

    def details(self) -> dict[str, Any]:
        return {"queue": self.topic, "expected": self.expected, "actual": self.actual}
