"""What the generated typed clients (`*_client.py`) may use of the runtime: exactly `__all__`.

Generated client modules import this as `_qmtl_client` and refer to `_qmtl_client.<Name>`
only. It imports httpx (through qmtl.runtime.http.client) and the runtime core, never the
server stack, so `pip install qmtl-contracts[client]` is enough to call a service.
"""

from __future__ import annotations

from qmtl.runtime.client_paging import Paging
from qmtl.runtime.client_retry import RetryPolicy
from qmtl.runtime.http.client import AsyncServiceClient, Operation, SyncServiceClient, Var

# Programs import what they use besides the clients (Encoding, QmtlError, ...) from
# qmtl.runtime.client; this list is only what the generated modules refer to.
__all__ = [
    "AsyncServiceClient",
    "Operation",
    "Paging",
    "RetryPolicy",
    "SyncServiceClient",
    "Var",
]
