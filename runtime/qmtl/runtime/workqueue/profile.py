"""Picks the WorkQueue adapter for a deployment profile.

- embedded: the in-memory adapter, for demos and unit tests; nothing survives the process.
- development: Redis; a server that would lose jobs is logged, not refused.
- production: Redis only, and only one that keeps accepted jobs (durability.py); anything
  else refuses to start with DurabilityError.
"""

from __future__ import annotations

import enum
import logging

from .durability import inspect_persistence, require_durable_redis
from .errors import WorkQueueError
from .memory_adapter import InMemoryWorkQueue
from .model import QueueSettings
from .port import WorkQueue
from .redis_adapter import RedisWorkQueue

log = logging.getLogger(__name__)


class QueueProfile(enum.StrEnum):
    EMBEDDED = "embedded"
    DEVELOPMENT = "development"
    PRODUCTION = "production"


async def open_work_queue(
    profile: QueueProfile,
    *,
    name: str,
    redis_url: str | None = None,
    settings: QueueSettings | None = None,
) -> WorkQueue:
    if profile is QueueProfile.EMBEDDED:
        return InMemoryWorkQueue(settings)
    if not redis_url:
        raise WorkQueueError(f"the {profile} profile needs a Redis URL for the work queue")
    settings = settings or QueueSettings()
    queue = RedisWorkQueue.from_url(redis_url, name, settings)
    try:
        if profile is QueueProfile.PRODUCTION:
            await require_durable_redis(queue.client, call_timeout=settings.call_timeout)
        else:
            problems = (
                await inspect_persistence(queue.client, call_timeout=settings.call_timeout)
            ).problems()
            if problems:
                log.warning("work queue Redis may lose jobs: %s", "; ".join(problems))
    except BaseException:
        await queue.aclose()
        raise
    return queue
