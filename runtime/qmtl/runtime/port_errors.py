"""The one shape of the ports' typed errors (work queue, graph store, topic admin).

A port error carries a stable wire code, a message, an optional `field` (a path into the
caller's input, e.g. "nodes[3].topic") and `retryable`: whether the same call, repeated
unchanged after a backoff, may succeed. The caller chooses between retrying and giving up on
that flag; `to_error_detail()` gives the platform's error body and `to_qmtl_error()` the
`QmtlError` a service answers with (the code's HTTP status; field in `details.field`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from qmtl.common.v1 import error_pb2

from .errors import ErrorCode, QmtlError, error_info_for_wire


class PortError(Exception):
    """Root of each port's errors; a port subclasses it once and sets `default_code`."""

    default_code: ClassVar[str] = "E_INTERNAL"
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str = "",
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field
        self.retryable = self.default_retryable if retryable is None else retryable

    def details(self) -> dict[str, Any]:
        """What the wire error carries besides code and message; subclasses add to it."""
        return {"field": self.field} if self.field else {}

    def to_error_detail(self) -> error_pb2.ErrorDetail:
        return error_pb2.ErrorDetail(code=self.code, message=self.message, retryable=self.retryable)

    def to_qmtl_error(self) -> QmtlError:
        """The error a service answers with; a code outside the catalogue is served as
        internal, since only catalogue codes have an HTTP status."""
        info = error_info_for_wire(self.code)
        code = info.code if info is not None else ErrorCode.ERROR_CODE_INTERNAL
        message = f"{self.field}: {self.message}" if self.field else self.message
        return QmtlError(code, message, details=self.details() or None, retryable=self.retryable)
