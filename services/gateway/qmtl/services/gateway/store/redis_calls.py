"""How RedisStrategyStore talks to Redis: the work queue's deadline and error classification
(qmtl.runtime.workqueue.redis_calls.bounded: one deadline per call, unreachable, timed out or
"not now" -> retryable), reported as the strategy store's own errors."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from qmtl.runtime.workqueue.errors import QueueUnavailableError, WorkQueueError
from qmtl.runtime.workqueue.redis_calls import bounded as queue_bounded

from .errors import StrategyStoreError, StrategyStoreUnavailableError

T = TypeVar("T")


async def bounded(call: Awaitable[T], within: float) -> T:
    """Awaits one Redis call for at most `within` seconds. A call cut short may still have run
    on the server; the write scripts are safe to repeat for that reason (redis_store.py)."""
    try:
        return await queue_bounded(call, within)
    except QueueUnavailableError as exc:
        raise StrategyStoreUnavailableError(exc.message) from exc
    except WorkQueueError as exc:
        message = f"Redis rejected a strategy-store operation: {exc.__cause__}"
        raise StrategyStoreError(message) from exc
