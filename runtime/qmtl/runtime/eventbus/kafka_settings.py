"""The aiokafka adapter's settings: what keeps events safe, and the bounds on retrying.

Fixed, not settings: acks=all, the idempotent producer (no duplicates or reordering from the
producer's own retries within a session), no auto-commit (the adapter commits after the
handler returned), `auto_offset_reset=earliest` (a new group starts at the oldest retained
event, never skips). docs/operations/kafka.md, "Producer and consumer settings".
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import EventBusError


@dataclass(frozen=True, slots=True)
class KafkaEventBusSettings:
    # One produce or fetch request; a batch the broker did not acknowledge within it fails the
    # attempt (aiokafka has no separate delivery timeout).
    request_timeout_ms: int = 15_000
    # How often publish, a dead-letter write and the final commit on stop are tried before
    # they give up with a retryable EventBusError, and the backoff between tries (doubling
    # from base to cap, e.g. 0.2, 0.4, 0.8, 1.6 s).
    attempts: int = 5
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 5.0
    # Producer batching: wait up to linger_ms to fill a batch of up to max_batch_bytes.
    linger_ms: int = 5
    max_batch_bytes: int = 256 * 1024
    # Consumer: records per fetch handed to the handler before a commit, and how long one
    # fetch waits for records (also the longest `stop()` waits for a fetch to return).
    max_poll_records: int = 500
    fetch_wait_ms: int = 500
    # A member that misses heartbeats for session_timeout_ms is dropped from the group and its
    # partitions go to the others (a killed consumer's events are redelivered after this).
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    # A handler slower than this between fetches makes the member leave the group.
    max_poll_interval_ms: int = 300_000

    def __post_init__(self) -> None:
        for name in (
            "request_timeout_ms",
            "attempts",
            "max_batch_bytes",
            "max_poll_records",
            "session_timeout_ms",
            "heartbeat_interval_ms",
            "max_poll_interval_ms",
        ):
            if getattr(self, name) < 1:
                raise _invalid(name, "must be at least 1")
        for name in ("linger_ms", "fetch_wait_ms", "backoff_base_s", "backoff_cap_s"):
            if getattr(self, name) < 0:
                raise _invalid(name, "must not be negative")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise _invalid("heartbeat_interval_ms", "must be below session_timeout_ms")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1)))


def _invalid(name: str, why: str) -> EventBusError:
    return EventBusError(
        f"KafkaEventBusSettings.{name} {why}",
        operation="connect",
        retryable=False,
        code="E_VALIDATION",
        field=name,
    )
