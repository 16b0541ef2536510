"""The diff's limits and defaults, each documented in docs/operations/diff.md."""

from __future__ import annotations

from dataclasses import dataclass

from qmtl.runtime.graphstore import MAX_BATCH

# How long a reused node with a changed schema_hash buffers before the DAG Manager re-diffs it
# (domain.md §4.3: a full recompute after 7 days); sets BufferInstruction.recompute_at.
BUFFER_WINDOW_SECONDS = 7 * 24 * 60 * 60

# Ranges of domain.md §2.4; 0 means "none" on both.
MAX_INTERVAL_SECONDS = 86_400
MAX_PERIOD = 10_000

# Tags of domain.md §2.5.
MAX_TAG_LENGTH = 100


class InvalidDiffLimits(Exception):
    """A DiffLimits that could never work (a programming or configuration error, not input)."""


@dataclass(frozen=True, slots=True)
class DiffLimits:
    """Bounds on one diff request.

    `max_nodes` is at most the graph store's MAX_BATCH because the whole DAG is written in one
    `apply` (one transaction); the DAG's nodes plus the stored nodes it depends on must also fit
    in one batch. `max_tags_per_node` bounds each node's tags and each tag query's tags.
    `max_apply_attempts` bounds how often a diff renames a new node's queue and retries the
    graph write after another node turned out to own the name (TopicConflictError).
    """

    max_nodes: int = MAX_BATCH
    max_tags_per_node: int = 100
    max_dependencies_per_node: int = 1_000
    max_apply_attempts: int = 16

    def __post_init__(self) -> None:
        if not 1 <= self.max_nodes <= MAX_BATCH:
            raise InvalidDiffLimits(f"max_nodes must be 1..{MAX_BATCH}, got {self.max_nodes}")
        for name in ("max_tags_per_node", "max_dependencies_per_node", "max_apply_attempts"):
            if getattr(self, name) < 1:
                raise InvalidDiffLimits(f"{name} must be at least 1, got {getattr(self, name)}")
