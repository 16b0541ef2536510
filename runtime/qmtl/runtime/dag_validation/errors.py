"""Constructors of the DAG validation's typed errors: every one names the offending field path."""

from __future__ import annotations

from typing import Any

from qmtl.common.v1 import error_code_pb2
from qmtl.runtime.errors import Code, QmtlError

ErrorCode = error_code_pb2.ErrorCode


def field_error(code: Code, field: str, message: str, **details: Any) -> QmtlError:
    """A QmtlError whose message starts with `field` and whose details carry it as `field`."""
    return QmtlError(code, f"{field}: {message}", details={"field": field, **details})


def validation(field: str, message: str, **details: Any) -> QmtlError:
    return field_error(ErrorCode.ERROR_CODE_VALIDATION, field, message, **details)


def dag_invalid(field: str, message: str, **details: Any) -> QmtlError:
    return field_error(ErrorCode.ERROR_CODE_DAG_INVALID, field, message, **details)


def node_id_fields(field: str, message: str, **details: Any) -> QmtlError:
    return field_error(ErrorCode.ERROR_CODE_NODE_ID_FIELDS, field, message, **details)
