"""The per-call context a handler method receives next to its request message.

One `Context` per call, made by the transport (HTTP endpoint or gRPC adapter): which rpc, who
called, the request headers or metadata and the deadline. The handler may answer another 2xx
status or add response headers through it; the transports read those back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from qmtl.runtime.auth import Principal
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.spec import RpcSpec

Transport = Literal["http", "grpc"]


class Context:
    """One call: `rpc`, `transport`, `principal`, `headers` (lower-case keys) and `deadline`.

    `principal` is None only for an allow_anonymous rpc called without a token. `deadline` is
    a `time.monotonic()` instant, None when the caller set none.
    """

    __slots__ = (
        "deadline",
        "headers",
        "principal",
        "response_headers",
        "rpc",
        "status",
        "transport",
    )

    def __init__(
        self,
        rpc: RpcSpec[Any, Any],
        transport: Transport,
        principal: Principal | None,
        headers: Mapping[str, str],
        deadline: float | None = None,
    ) -> None:
        self.rpc = rpc
        self.transport: Transport = transport
        self.principal = principal
        self.headers = headers
        self.deadline = deadline
        self.status = 200
        self.response_headers: dict[str, str] = {}

    def time_remaining(self) -> float | None:
        """Seconds left before the deadline (negative once passed); None without one."""
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()

    def set_status(self, status: int) -> None:
        """Answer with another 2xx status (e.g. 202 for a queued submission); gRPC ignores it.

        Outside 200-299 it raises E_INTERNAL: an error is raised as QmtlError, never set here.
        """
        if not 200 <= status <= 299:
            raise QmtlError.internal(f"set_status takes a 2xx status, got {status}")
        self.status = status

    def set_header(self, name: str, value: str) -> None:
        """A response header (HTTP) or initial metadata entry (gRPC)."""
        self.response_headers[name] = value

    def __repr__(self) -> str:
        return f"Context({self.rpc.full_name}, {self.transport}, {self.principal})"
