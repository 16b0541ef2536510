"""The diff's limits and defaults, each documented in docs/operations/diff.md.

The bounds on the DAG itself are the shared validation's (qmtl.runtime.dag_validation.DagLimits),
so the Gateway refuses at submit what the diff would refuse; the diff adds its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from qmtl.runtime.dag_validation import DagLimits, InvalidDagLimits

# How long a reused node with a changed schema_hash buffers before the DAG Manager re-diffs it
# (domain.md §4.3: a full recompute after 7 days); sets BufferInstruction.recompute_at.
BUFFER_WINDOW_SECONDS = 7 * 24 * 60 * 60

InvalidDiffLimits = InvalidDagLimits


@dataclass(frozen=True, slots=True)
class DiffLimits(DagLimits):
    """The DAG's bounds (DagLimits) and the diff's own: `max_apply_attempts` bounds how often a
    diff renames a new node's queue and retries the graph write after another node turned out
    to own the name (TopicConflictError)."""

    max_apply_attempts: int = 16

    def __post_init__(self) -> None:
        super(DiffLimits, self).__post_init__()
        if self.max_apply_attempts < 1:
            raise InvalidDiffLimits(
                f"max_apply_attempts must be at least 1, got {self.max_apply_attempts}"
            )
