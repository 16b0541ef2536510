"""The DAG Manager's diff: a strategy DAG against the global DAG (docs/operations/diff.md)."""

from .limits import BUFFER_WINDOW_SECONDS, DiffLimits, InvalidDiffLimits
from .naming import hash_segments, topic_candidates
from .service import DiffService

__all__ = [
    "BUFFER_WINDOW_SECONDS",
    "DiffLimits",
    "DiffService",
    "InvalidDiffLimits",
    "hash_segments",
    "topic_candidates",
]
