"""Garbage collection of orphan queues (issue 10 §4, domain.md §4.4): docs/operations/gc.md."""

from .collector import Archiver, BrokerLoad, DroppedQueue, GarbageCollector, GcOutcome, GcStore
from .lifecycle import REASON_TTL_EXPIRED
from .policy import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_OBSERVE_LIMIT,
    DEFAULT_POLICIES,
    HIGH_BROKER_LOAD,
    MAX_GC_BATCH,
    GcConfigError,
    GcPolicy,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_OBSERVE_LIMIT",
    "DEFAULT_POLICIES",
    "HIGH_BROKER_LOAD",
    "MAX_GC_BATCH",
    "REASON_TTL_EXPIRED",
    "Archiver",
    "BrokerLoad",
    "DroppedQueue",
    "GarbageCollector",
    "GcConfigError",
    "GcOutcome",
    "GcPolicy",
    "GcStore",
]
