"""The values the GraphStore port speaks: what a diff writes and what lookups answer.

Plain frozen dataclasses rather than qmtl.dag.v1 messages: they are the storage model (queue
bound to a node, reference counts, orphan times), which the wire messages do not carry; the
DAG Manager maps them onto QueueDescriptor / QueueUpdated at its edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Entries per call (nodes of a change set, ids of a lookup, topics of a delete). One call is
# one transaction; this keeps a Neo4j UNWIND batch and its memory bounded. Documented in
# docs/operations/graph-store.md.
MAX_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class NodeWrite:
    """A ComputeNode as the diff submits it, with the queue it gets if it is new.

    For a node already stored, the stored identity fields and queue are kept; `tags` are
    added to the stored ones and `schema_hash`/`is_global` replace theirs (see the port).
    """

    node_id: str
    node_type: str
    topic: str
    interval: int = 0  # seconds; 0 = none
    period: int = 0
    tags: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    code_hash: str = ""
    schema_compat_id: str = ""
    schema_hash: str = ""
    params_canon: str = "null"
    is_global: bool = False


@dataclass(frozen=True, slots=True)
class StrategyRefs:
    """`strategy_id` uses each of `node_ids` (a set: repeating a pair changes nothing)."""

    strategy_id: str
    node_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GraphChanges:
    """Everything one diff persists, applied all or nothing."""

    nodes: tuple[NodeWrite, ...] = ()
    refs: StrategyRefs | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of `apply`: the queue each written node is bound to (for a node that
    already existed, its stored queue, whatever topic the change set proposed) and which
    nodes this call created."""

    topics: dict[str, str] = field(default_factory=dict)
    created: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredNode:
    node_id: str
    node_type: str
    topic: str
    interval: int
    period: int
    tags: tuple[str, ...]  # sorted
    dependencies: tuple[str, ...]
    code_hash: str
    schema_compat_id: str
    schema_hash: str
    params_canon: str
    is_global: bool
    created_at: float  # epoch seconds, of the node and its queue
    ref_count: int  # strategies using the node
    orphaned_since: float | None  # when ref_count last became 0; None while referenced


@dataclass(frozen=True, slots=True)
class TaggedQueue:
    """One answer of a tag lookup."""

    topic: str
    node_id: str
    interval: int
    tags: tuple[str, ...]  # sorted
    is_global: bool


@dataclass(frozen=True, slots=True)
class Orphan:
    """A queue whose node no strategy uses, a GC candidate once old enough."""

    topic: str
    node_id: str
    node_type: str
    interval: int
    tags: tuple[str, ...]
    created_at: float
    orphaned_since: float
