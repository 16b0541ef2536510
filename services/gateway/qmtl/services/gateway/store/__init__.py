"""The Gateway's strategy state behind the StrategyStore port: MemoryStrategyStore (embedded
default) and RedisStrategyStore (shared by every Gateway instance).
docs/operations/gateway-state.md.
"""

from .errors import (
    IdempotencyConflictError,
    InvalidCursorError,
    InvalidStateError,
    InvalidStrategyInputError,
    StrategyIdTakenError,
    StrategyNotFoundError,
    StrategyStoreError,
    StrategyStoreUnavailableError,
    StrategyTooLargeError,
)
from .memory import MemoryStrategyStore
from .port import (
    DEFAULT_EVENT_LOG_CAP,
    DEFAULT_PREFIX,
    DEFAULT_STRATEGY_EVENT_LOG_CAP,
    IDEMPOTENCY_TTL_SECONDS,
    MAX_PAGE,
    MAX_STRATEGY_BYTES,
    Announcement,
    Clock,
    Created,
    StrategyStore,
)
from .redis_store import RedisStrategyStore

__all__ = [
    "DEFAULT_EVENT_LOG_CAP",
    "DEFAULT_PREFIX",
    "DEFAULT_STRATEGY_EVENT_LOG_CAP",
    "IDEMPOTENCY_TTL_SECONDS",
    "MAX_PAGE",
    "MAX_STRATEGY_BYTES",
    "Announcement",
    "Clock",
    "Created",
    "IdempotencyConflictError",
    "InvalidCursorError",
    "InvalidStateError",
    "InvalidStrategyInputError",
    "MemoryStrategyStore",
    "RedisStrategyStore",
    "StrategyIdTakenError",
    "StrategyNotFoundError",
    "StrategyStore",
    "StrategyStoreError",
    "StrategyStoreUnavailableError",
    "StrategyTooLargeError",
]
