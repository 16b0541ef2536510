"""Gateway's durable work queue: the WorkQueue port, its Redis and in-memory adapters, the
reaper, the worker loop and the Redis durability check.

Start with `open_work_queue(profile, ...)` and `run_worker(queue, handler, worker_id=...)`.
"""

from .durability import PersistenceReport, inspect_persistence, require_durable_redis
from .errors import (
    BatchTooLargeError,
    DurabilityError,
    IdempotencyConflictError,
    InvalidDurationError,
    InvalidJobError,
    JobFailedError,
    JobNotFoundError,
    LeaseLostError,
    QueueUnavailableError,
    WorkQueueError,
)
from .memory_adapter import InMemoryWorkQueue
from .model import (
    ALL_DEAD,
    BackoffPolicy,
    Clock,
    CompletedAndLeased,
    CompleteOutcome,
    Completion,
    EnqueueResult,
    FailedAndLeased,
    Lease,
    QueueSettings,
    QueueStats,
    Reaped,
    Redriven,
    RedriveScope,
)
from .port import WorkQueue
from .profile import QueueProfile, open_work_queue
from .reaper import reap_until_clean, run_reaper
from .redis_adapter import RedisWorkQueue
from .worker import Handler, Shutdown, WorkerReport, WorkerSettings, run_worker

__all__ = [
    "ALL_DEAD",
    "BackoffPolicy",
    "BatchTooLargeError",
    "Clock",
    "CompleteOutcome",
    "CompletedAndLeased",
    "Completion",
    "DurabilityError",
    "EnqueueResult",
    "FailedAndLeased",
    "Handler",
    "IdempotencyConflictError",
    "InMemoryWorkQueue",
    "InvalidDurationError",
    "InvalidJobError",
    "JobFailedError",
    "JobNotFoundError",
    "Lease",
    "LeaseLostError",
    "PersistenceReport",
    "QueueProfile",
    "QueueSettings",
    "QueueStats",
    "QueueUnavailableError",
    "Reaped",
    "RedisWorkQueue",
    "RedriveScope",
    "Redriven",
    "Shutdown",
    "WorkQueue",
    "WorkQueueError",
    "WorkerReport",
    "WorkerSettings",
    "inspect_persistence",
    "open_work_queue",
    "reap_until_clean",
    "require_durable_redis",
    "run_reaper",
    "run_worker",
]
