"""The diff's typed errors: the shared DAG validation's constructors (qmtl.runtime.dag_validation),
under the name the diff's modules use."""

from __future__ import annotations

from qmtl.runtime.dag_validation import ErrorCode, dag_invalid, node_id_fields, validation
from qmtl.runtime.dag_validation import field_error as diff_error

__all__ = ["ErrorCode", "dag_invalid", "diff_error", "node_id_fields", "validation"]
