"""The runner's typed errors."""

from __future__ import annotations

from qmtl.runtime.errors import Code, ErrorCode, QmtlError


class RunnerError(QmtlError):
    """A plan the runner cannot run, or a compute function that failed; `details` names the
    node."""

    def __init__(
        self, message: str, *, node_id: str = "", code: Code = ErrorCode.ERROR_CODE_VALIDATION
    ) -> None:
        super().__init__(code, message, details={"node_id": node_id} if node_id else None)
        self.node_id = node_id
