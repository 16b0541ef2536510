"""ReleaseStrategy: a strategy stops using the global DAG; nodes nobody uses become orphans.

A release changes no tag-query answer (orphans keep answering until garbage collection drops
their queues), so it publishes nothing: the QueueUpdated comes with the GC that deletes them.
"""

from __future__ import annotations

from qmtl.dagmanager.v1 import release_messages_pb2
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.graphstore import GraphStore, GraphStoreError


def check_strategy_id(strategy_id: str, field: str = "strategy_id") -> None:
    # Exactly what a diff accepts (diff/validate.py): anything stricter would leave a
    # strategy that could be diffed but never released.
    if not strategy_id:
        raise QmtlError.validation(f"{field}: must not be empty", field=field)


async def release_strategy(
    store: GraphStore, request: release_messages_pb2.ReleaseStrategyRequest
) -> release_messages_pb2.ReleaseStrategyResponse:
    """Drops the strategy's references. Idempotent: an unknown or already released strategy
    orphans nothing. E_VALIDATION for a malformed id, the store's error (E_UNAVAILABLE) if the
    graph cannot be written."""
    check_strategy_id(request.strategy_id)
    try:
        orphaned = await store.release_strategy(request.strategy_id)
    except GraphStoreError as error:
        raise error.to_qmtl_error() from error
    return release_messages_pb2.ReleaseStrategyResponse(
        strategy_id=request.strategy_id, orphaned_node_ids=sorted(orphaned)
    )
