"""The graph store's typed errors: one root, each with a stable wire code and `retryable`.

`retryable` tells the caller (the diff) whether the same call may succeed if repeated after a
backoff: a store that is briefly unreachable, or a topic taken by a concurrent writer (the
diff then recomputes names against the graph and tries again). `to_qmtl_error()` gives the
`QmtlError` a service answers with (E_VALIDATION 422, E_DUPLICATE 409, ...); the shape is
qmtl.runtime.port_errors.PortError, shared by every port.
"""

from __future__ import annotations

from qmtl.runtime.port_errors import PortError


class GraphStoreError(PortError):
    """Root of every error a GraphStore raises."""


class GraphStoreUnavailableError(GraphStoreError):
    """The backing store could not be reached or refused the transaction for now."""

    default_code = "E_UNAVAILABLE"
    default_retryable = True


class InvalidGraphInputError(GraphStoreError):
    """A malformed argument: empty ids, negative intervals, duplicates within one change set."""

    default_code = "E_VALIDATION"


class GraphBatchTooLargeError(GraphStoreError):
    """More entries in one call than `MAX_BATCH` (one transaction must stay bounded)."""

    default_code = "E_PAYLOAD_TOO_LARGE"


class MissingDependencyError(GraphStoreError):
    """A node depends on an id that is neither stored nor written by the same change set."""

    default_code = "E_DAG_INVALID"


class TopicConflictError(GraphStoreError):
    """A new node asks for a topic another node already owns. Retryable: the diff names the
    queue again against the graph as it is now (the collision growth of domain.md §2.6)."""

    default_code = "E_DUPLICATE"
    default_retryable = True


class UnknownNodeError(GraphStoreError):
    """A strategy reference names a node the graph does not hold."""

    default_code = "E_NOT_FOUND"
