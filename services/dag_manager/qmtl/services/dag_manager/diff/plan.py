"""What a diff decides per node before writing: reuse a stored queue, or name a new one.

Names of new nodes avoid every topic this diff already knows is taken (the stored queues of
the DAG's own nodes and the names given to earlier new nodes of the same DAG); a name owned by
some node outside the DAG is only discovered when the store refuses it, and `rename` then moves
that node on to its next candidate.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from qmtl.runtime import nodeid
from qmtl.runtime.graphstore import NodeWrite, StoredNode

from .naming import TopicNamesExhausted, first_free, topic_candidates
from .validate import ParsedNode


@dataclass(slots=True)
class NodePlan:
    parsed: ParsedNode
    stored: StoredNode | None
    topic: str
    candidates: Iterator[str] | None  # remaining names of a new node

    @property
    def interval(self) -> int:
        return self.parsed.node.spec.interval or self.parsed.query_interval

    def write(self) -> NodeWrite:
        node = self.parsed.node
        spec = node.spec
        return NodeWrite(
            node_id=self.parsed.node_id,
            node_type=spec.node_type,
            topic=self.topic,
            interval=self.interval,
            period=spec.period,
            tags=tuple(dict.fromkeys(node.tags)),
            dependencies=self.parsed.dependencies,
            code_hash=spec.code_hash,
            schema_compat_id=spec.schema_compat_id or spec.schema_id,
            schema_hash=node.schema_hash,
            # A stored node keeps its identity fields; reusing its text skips a JSON round trip.
            params_canon=(
                self.stored.params_canon if self.stored is not None else _params_canon(self.parsed)
            ),
            # Not on the wire: keep whatever the stored node says rather than clear it.
            is_global=self.stored.is_global if self.stored is not None else False,
        )


def _params_canon(parsed: ParsedNode) -> str:
    spec = parsed.node.spec
    if parsed.is_tag_query:
        # The same text the id hashes; nodeid owns that rule, so it is reused, not restated.
        return nodeid.tag_query_params(spec, parsed.index)
    return nodeid.canonical_params(spec.params_json)


class Planner:
    def __init__(self, version: str, dry_run: bool) -> None:
        self._version = version
        self._dry_run = dry_run
        self._taken: set[str] = set()

    def plan(
        self, nodes: tuple[ParsedNode, ...], stored: Mapping[str, StoredNode]
    ) -> list[NodePlan]:
        self._taken.update(s.topic for s in stored.values())
        plans = []
        for parsed in nodes:
            record = stored.get(parsed.node_id)
            if record is not None:
                plans.append(NodePlan(parsed, record, record.topic, None))
                continue
            node = parsed.node
            candidates = topic_candidates(
                tags=list(node.tags),
                node_type=node.spec.node_type,
                node_id=parsed.node_id,
                version=self._version,
                dry_run=self._dry_run,
            )
            name, rest = first_free(candidates, self._taken)
            self._taken.add(name)
            plans.append(NodePlan(parsed, None, name, rest))
        return plans

    def rename(self, plan: NodePlan) -> None:
        """Moves a new node to its next free name: the store said its name is taken."""
        if plan.candidates is None:
            raise TopicNamesExhausted(f"node {plan.parsed.node_id} is stored, not renamed")
        self._taken.add(plan.topic)
        plan.topic, plan.candidates = first_free(plan.candidates, self._taken)
        self._taken.add(plan.topic)
