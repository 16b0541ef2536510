"""The one validation of a submitted DAG, shared by the Gateway (at submit) and the DAG Manager
(at diff): node ids recomputed, checksum, limits, edges, cycles (docs/operations/diff.md).

`validate_dag(dag, node_ids_crc32, limits)` raises the QmtlError of the first problem, naming
its field, or returns the parsed nodes.
"""

from .cycles import find_cycle
from .errors import ErrorCode, dag_invalid, field_error, node_id_fields, validation
from .limits import (
    MAX_INTERVAL_SECONDS,
    MAX_PERIOD,
    MAX_TAG_LENGTH,
    TAG_PATTERN,
    DagLimits,
    InvalidDagLimits,
)
from .validator import DAG_SCHEMA_VERSION, ParsedNode, ValidatedDag, validate_dag

__all__ = [
    "DAG_SCHEMA_VERSION",
    "MAX_INTERVAL_SECONDS",
    "MAX_PERIOD",
    "MAX_TAG_LENGTH",
    "TAG_PATTERN",
    "DagLimits",
    "ErrorCode",
    "InvalidDagLimits",
    "ParsedNode",
    "ValidatedDag",
    "dag_invalid",
    "field_error",
    "find_cycle",
    "node_id_fields",
    "validate_dag",
    "validation",
]
