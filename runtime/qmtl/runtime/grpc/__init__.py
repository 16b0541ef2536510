"""The gRPC transport: a generated handler served through grpc.aio, with the HTTP rules.

`server` builds each servicer method once from the rpc's RpcSpec (the same data the HTTP routes
are built from), so both transports authenticate, run interceptors, honour deadlines and map
errors alike; `errors` turns a failed call back into the QmtlError the server raised; `client`
holds GrpcCaller, the RpcCaller (qmtl.runtime.rpc_caller) a service calls another one with. The
contract is in docs/api/GRPC.md and docs/api/RPC-CALLER.md. Only this package imports grpc: the
runtime core does not.
"""

from __future__ import annotations

from qmtl.runtime.grpc.client import GrpcCaller
from qmtl.runtime.grpc.errors import error_from_rpc_error, status_code
from qmtl.runtime.grpc.server import ServicerContext, UnaryMethod, metadata_headers, unary

__all__ = [
    "GrpcCaller",
    "ServicerContext",
    "UnaryMethod",
    "error_from_rpc_error",
    "metadata_headers",
    "status_code",
    "unary",
]
