"""What generated `<file>_http.py` modules use: the HTTP server side of the runtime contract.

A generated router is data (Binding tables, `HttpRoute` tuples) plus thin functions calling
`routes` and the app factories here; every name it uses is in `__all__` below.
"""

from __future__ import annotations

from qmtl.runtime.auth import TokenVerifier
from qmtl.runtime.http.endpoint import HttpRoute, routes
from qmtl.runtime.http.params import (
    Param,
    QueryParams,
    Required,
    Slot,
    enum_parser,
    parse_bool,
    parse_bytes,
    parse_double,
    parse_duration,
    parse_field_mask,
    parse_float,
    parse_int32,
    parse_int64,
    parse_string,
    parse_timestamp,
    parse_uint32,
    parse_uint64,
)
from qmtl.runtime.http.server import (
    Binding,
    create_internal_app,
    create_public_app,
    load_document,
)
from qmtl.runtime.pipeline import Interceptor

__all__ = [
    "Binding",
    "HttpRoute",
    "Interceptor",
    "Param",
    "QueryParams",
    "Required",
    "Slot",
    "TokenVerifier",
    "create_internal_app",
    "create_public_app",
    "enum_parser",
    "load_document",
    "parse_bool",
    "parse_bytes",
    "parse_double",
    "parse_duration",
    "parse_field_mask",
    "parse_float",
    "parse_int32",
    "parse_int64",
    "parse_string",
    "parse_timestamp",
    "parse_uint32",
    "parse_uint64",
    "routes",
]
