"""Checks a DiffRequest before anything is read or written: its strategy_id, then the DAG by the
validation the Gateway runs too (qmtl.runtime.dag_validation, whose module doc gives the order).
"""

from __future__ import annotations

from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.runtime.dag_validation import ParsedNode, ValidatedDag, validate_dag, validation

from .limits import DiffLimits

__all__ = ["ParsedNode", "ValidatedDag", "validate_request"]


def validate_request(request: diff_messages_pb2.DiffRequest, limits: DiffLimits) -> ValidatedDag:
    """Raises the QmtlError of the first problem found."""
    if not request.strategy_id:
        raise validation("strategy_id", "must not be empty")
    dag = request.dag if request.HasField("dag") else None
    return validate_dag(dag, request.node_ids_crc32, limits)
