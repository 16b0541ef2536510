"""The bounds a submitted DAG must keep, each documented in docs/operations/diff.md."""

from __future__ import annotations

import re
from dataclasses import dataclass

from qmtl.runtime.graphstore.model import MAX_BATCH

# Ranges of domain.md §2.4; 0 means "none" on both.
MAX_INTERVAL_SECONDS = 86_400
MAX_PERIOD = 10_000

# Tags of domain.md §2.5.
MAX_TAG_LENGTH = 100
# A tag: 1..MAX_TAG_LENGTH of these (domain.md §2.5); the SDK refuses others when authoring.
TAG_PATTERN = re.compile(r"[a-zA-Z0-9_.-]+")


class InvalidDagLimits(Exception):
    """Limits that could never work (a programming or configuration error, not input)."""


@dataclass(frozen=True, slots=True)
class DagLimits:
    """Bounds on one submitted DAG, the same at the Gateway and the DAG Manager.

    `max_nodes` is at most the graph store's MAX_BATCH because the DAG Manager writes the whole
    DAG in one `apply` (one transaction); the DAG's nodes plus the stored nodes it depends on
    must also fit in one batch. `max_tags_per_node` bounds each node's tags and each tag
    query's tags.
    """

    max_nodes: int = MAX_BATCH
    max_tags_per_node: int = 100
    max_dependencies_per_node: int = 1_000

    def __post_init__(self) -> None:
        if not 1 <= self.max_nodes <= MAX_BATCH:
            raise InvalidDagLimits(f"max_nodes must be 1..{MAX_BATCH}, got {self.max_nodes}")
        for name in ("max_tags_per_node", "max_dependencies_per_node"):
            if getattr(self, name) < 1:
                raise InvalidDagLimits(f"{name} must be at least 1, got {getattr(self, name)}")
