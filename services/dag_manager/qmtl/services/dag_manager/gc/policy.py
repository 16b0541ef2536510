"""GC policies (domain.md §4.4) and the limits of one sweep.

A queue's GC tag comes from its node type and topic name (qmtl.runtime.topicadmin.gc_tag_for,
the same rule that tagged the topic at creation), so the graph alone decides, without asking
the broker. Ages are measured from when the node became an orphan, not from its creation: a
queue that some strategy uses is never collected, however old, and one that was just released
gets its full TTL + grace. Documented in docs/operations/gc.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.graphstore import MAX_BATCH
from qmtl.runtime.topicadmin import GC_TAG_INDICATOR, GC_TAG_RAW, GC_TAG_SENTINEL

DAY: Final = 24 * 60 * 60.0

# Candidates dropped per sweep when the request says 0 (qmtl's default); the rest wait for the
# next sweep. MAX_GC_BATCH bounds one sweep's store and broker calls.
DEFAULT_BATCH_SIZE: Final = 50
MAX_GC_BATCH: Final = 1000
# At or above this broker load (0..1, from the optional load probe) the batch is halved.
HIGH_BROKER_LOAD: Final = 0.8
# Orphans looked at per sweep, longest-orphaned first (one GraphStore call; its own limit).
DEFAULT_OBSERVE_LIMIT: Final = MAX_BATCH


class GcConfigError(Exception):
    """A collector configured with impossible values (a deployment bug, found at start)."""


@dataclass(frozen=True, slots=True)
class GcPolicy:
    """Collect an orphan once it has been one for `ttl + grace` seconds; `archive` first if set."""

    ttl: float
    grace: float
    archive: bool = False

    def __post_init__(self) -> None:
        if not (self.ttl >= 0 and self.grace >= 0):  # also refuses NaN
            raise GcConfigError(f"ttl and grace must be >= 0 seconds, got {self.ttl}, {self.grace}")

    @property
    def threshold(self) -> float:
        return self.ttl + self.grace


DEFAULT_POLICIES: Final[Mapping[str, GcPolicy]] = MappingProxyType(
    {
        GC_TAG_RAW: GcPolicy(ttl=7 * DAY, grace=1 * DAY),
        GC_TAG_INDICATOR: GcPolicy(ttl=30 * DAY, grace=3 * DAY),
        GC_TAG_SENTINEL: GcPolicy(ttl=180 * DAY, grace=30 * DAY, archive=True),
    }
)


def check_observe_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_BATCH:
        raise GcConfigError(f"observe_limit must be between 1 and {MAX_BATCH}, got {limit}")


def effective_batch_size(requested: int, broker_load: float | None) -> int:
    """The batch of one sweep: `requested` (0 = the default), halved under high broker load.

    Raises QmtlError(E_VALIDATION, field `batch_size`) outside 0..MAX_GC_BATCH.
    """
    if requested < 0 or requested > MAX_GC_BATCH:
        raise QmtlError(
            ErrorCode.ERROR_CODE_VALIDATION,
            f"batch_size: must be between 0 (the default, {DEFAULT_BATCH_SIZE}) and "
            f"{MAX_GC_BATCH}, got {requested}",
            details={"field": "batch_size"},
        )
    size = requested or DEFAULT_BATCH_SIZE
    if broker_load is not None and broker_load >= HIGH_BROKER_LOAD:
        size = max(1, size // 2)
    return size
