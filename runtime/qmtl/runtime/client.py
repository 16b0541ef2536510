"""What a program calling QMTL services with the typed clients imports besides the clients.

    from qmtl.gateway.v1.gateway_service_client import GatewayServiceClient
    from qmtl.runtime.client import Encoding, QmtlError, RetryPolicy

Everything here installs with `pip install "qmtl-contracts[client]"` (httpx and protobuf, no
server or backend drivers); docs/api/CLIENT.md describes calls, errors, retries, timeouts and
paging.
"""

from __future__ import annotations

from qmtl.runtime.client_retry import NO_RETRY, RetryPolicy
from qmtl.runtime.codec import Encoding
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.http.client import DEFAULT_TIMEOUT, TIMEOUT_HEADER, PathValueError

__all__ = [
    "DEFAULT_TIMEOUT",
    "NO_RETRY",
    "TIMEOUT_HEADER",
    "Encoding",
    "ErrorCode",
    "PathValueError",
    "QmtlError",
    "RetryPolicy",
]
