"""The values the GraphStore port speaks: what a diff writes and what lookups answer.

Plain frozen dataclasses rather than qmtl.dag.v1 messages: they are the storage model (queue
bound to a node, reference counts, orphan times), which the wire messages do not carry; the
DAG Manager maps them onto QueueDescriptor / QueueUpdated at its edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Entries per call (nodes of a change set, ids of a lookup, topics of a delete). One call is
# one transaction; this keeps a Neo4j UNWIND batch and its memory bounded. Documented in
# docs/operations/graph-store.md.
MAX_BATCH = 10_000
# Bytes of one DiffSnapshot payload (a 10,000-node queue map is about 1.5 MB).
MAX_SNAPSHOT_BYTES = 8 * 1024 * 1024


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
class DiffSnapshot:
    """A diff's answer, kept with the strategy it was for, so that an identical resubmission
    can be answered without revisiting every node (GraphStore.snapshot).

    `key` names the request (the diff hashes the DAG and its checksum); `payload` is opaque
    to the store."""

    key: str
    payload: bytes
    # What the diff built `payload` from: the rev of each node it read (NOT_STORED for those it
    # found absent and creates). The store records the snapshot only if the graph still says
    # exactly that when the change set is applied, so a payload never outlives a change it
    # did not see (a racing writer's tags, a node another instance created first).
    seen: Mapping[str, int] = field(default_factory=dict)


NOT_STORED = -1  # DiffSnapshot.seen: the diff found no such node


@dataclass(frozen=True, slots=True)
class GraphChanges:
    """Everything one diff persists, applied all or nothing.

    With `refs`, the change set also replaces the strategy's snapshot: by `snapshot`, or by
    none. A snapshot needs `refs` (it belongs to that strategy)."""

    nodes: tuple[NodeWrite, ...] = ()
    refs: StrategyRefs | None = None
    snapshot: DiffSnapshot | None = None


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
    rev: int = 0  # bumped by every write that changes tags, schema_hash or is_global


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
