"""The strategy store's typed errors: one root, each with a catalogue code and `retryable`.

The shape is qmtl.runtime.port_errors.PortError, shared by every port: `to_qmtl_error()` gives
what the Gateway answers with (E_NOT_FOUND 404, E_INVALID_STATE 409, E_IDEMPOTENCY_CONFLICT
409, E_UNAVAILABLE 503, ...).
"""

from __future__ import annotations

from typing import Any

from qmtl.dag.v1 import strategy_pb2
from qmtl.runtime.port_errors import PortError


class StrategyStoreError(PortError):
    """Root of every error a StrategyStore raises."""


class StrategyStoreUnavailableError(StrategyStoreError):
    """The backing store could not be reached, did not answer in time or refused for now."""

    default_code = "E_UNAVAILABLE"
    default_retryable = True


class StrategyNotFoundError(StrategyStoreError):
    """No strategy has this id."""

    default_code = "E_NOT_FOUND"

    def __init__(self, strategy_id: str) -> None:
        super().__init__(f"no strategy {strategy_id!r}")
        self.strategy_id = strategy_id

    def details(self) -> dict[str, Any]:
        return {"strategy_id": self.strategy_id}


class InvalidStateError(StrategyStoreError):
    """A transition's compare-and-set failed: the strategy is in `current`, not an expected state.

    Not retryable as such: the caller decides from `current` what to do (usually nothing,
    another worker got there first)."""

    default_code = "E_INVALID_STATE"

    def __init__(
        self,
        current: int,
        *,
        strategy_id: str = "",
        expected: frozenset[int] = frozenset(),
        to: int = 0,
    ) -> None:
        wanted = " or ".join(sorted(_state_name(s) for s in expected)) or "an expected state"
        super().__init__(
            f"strategy {strategy_id!r} is {_state_name(current)}, not {wanted}: "
            f"cannot move it to {_state_name(to)}"
        )
        self.current = current
        self.strategy_id = strategy_id
        self.expected = expected
        self.to = to

    def details(self) -> dict[str, Any]:
        return {"strategy_id": self.strategy_id, "state": _state_name(self.current)}


class IdempotencyConflictError(StrategyStoreError):
    """The idempotency key already names a strategy submitted with another payload (fingerprint);
    that strategy stands and nothing was written."""

    default_code = "E_IDEMPOTENCY_CONFLICT"

    def __init__(self, idempotency_key: str, strategy_id: str) -> None:
        super().__init__(
            f"idempotency key {idempotency_key!r} already names strategy {strategy_id!r} "
            "submitted with a different payload"
        )
        self.idempotency_key = idempotency_key
        self.strategy_id = strategy_id

    def details(self) -> dict[str, Any]:
        return {"idempotency_key": self.idempotency_key, "strategy_id": self.strategy_id}


class InvalidStrategyInputError(StrategyStoreError):
    """A malformed argument (empty id, unset state, a limit out of range); nothing was written."""

    default_code = "E_VALIDATION"


class InvalidCursorError(StrategyStoreError):
    """A paging cursor this store did not hand out, or one handed out for other filters."""

    default_code = "E_INVALID_PAGE_TOKEN"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="cursor")


class StrategyTooLargeError(StrategyStoreError):
    """A strategy record over MAX_STRATEGY_BYTES serialized; nothing was written."""

    default_code = "E_PAYLOAD_TOO_LARGE"


class StrategyIdTakenError(StrategyStoreError):
    """`create` with a strategy_id another strategy (with another dag_hash) already has: the
    caller's id generator is broken, since ids are fresh UUIDs; nothing was written."""

    default_code = "E_DUPLICATE"


def _state_name(state: int) -> str:
    try:
        return strategy_pb2.StrategyState.Name(state)  # type: ignore[arg-type]
    except ValueError:
        return str(state)
