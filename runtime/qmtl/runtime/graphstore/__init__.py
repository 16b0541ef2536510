"""The DAG Manager's storage of the global DAG: the GraphStore port and its adapters.

The port lives in the shared runtime (not in the DAG Manager) so the contract suite, the
migration tooling and the benchmarks use the same types. See docs/operations/graph-store.md.
"""

from .errors import (
    GraphBatchTooLargeError,
    GraphStoreError,
    GraphStoreUnavailableError,
    InvalidGraphInputError,
    MissingDependencyError,
    TopicConflictError,
    UnknownNodeError,
)
from .memory import InMemoryGraphStore
from .model import (
    MAX_BATCH,
    MAX_SNAPSHOT_BYTES,
    NOT_STORED,
    Applied,
    DiffSnapshot,
    GraphChanges,
    NodeWrite,
    Orphan,
    StoredNode,
    StrategyRefs,
    TaggedQueue,
)
from .outbox import (
    DEFAULT_OUTBOX_PAGE,
    MAX_OUTBOX_PAYLOAD_BYTES,
    AnswerAnnouncement,
    DeleteAnnouncements,
    OutboxEntry,
    OutboxMessage,
)
from .port import GraphStore, MatchMode

__all__ = [
    "DEFAULT_OUTBOX_PAGE",
    "MAX_BATCH",
    "MAX_OUTBOX_PAYLOAD_BYTES",
    "MAX_SNAPSHOT_BYTES",
    "NOT_STORED",
    "AnswerAnnouncement",
    "Applied",
    "DeleteAnnouncements",
    "DiffSnapshot",
    "GraphBatchTooLargeError",
    "GraphChanges",
    "GraphStore",
    "GraphStoreError",
    "GraphStoreUnavailableError",
    "InMemoryGraphStore",
    "InvalidGraphInputError",
    "MatchMode",
    "MissingDependencyError",
    "NodeWrite",
    "Orphan",
    "OutboxEntry",
    "OutboxMessage",
    "StoredNode",
    "StrategyRefs",
    "TaggedQueue",
    "TopicConflictError",
    "UnknownNodeError",
]
