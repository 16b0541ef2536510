"""What one strategy process runs, from the Gateway's queue map (client.plan_from_diff)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..strategy import Strategy


@dataclass(frozen=True)
class RunPlan:
    strategy: Strategy
    topics: Mapping[str, str]
    """node_id -> the topic carrying that node's records (every node of the strategy)."""
    run: frozenset[str]
    """Node ids this process computes (the new ones); the others are only consumed."""
    tag_inputs: Mapping[str, tuple[str, ...]]
    """TagQueryNode id -> the topics its query resolved to (`Runner.update_tag_inputs` adds
    to them when a QueueUpdated arrives)."""
