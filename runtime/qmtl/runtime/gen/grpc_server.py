"""What generated gRPC adapters (`<file>_grpc.py`) may use of the runtime: exactly `__all__`.

A generated `<Service>GrpcAdapter` builds each servicer method with `unary` from the rpc's
RpcSpec; `add_<service>_to_server` registers it on a `Server`. Importing this module imports
grpc, which the runtime core (qmtl.runtime.gen) does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import grpc

from qmtl.runtime.auth import TokenVerifier
from qmtl.runtime.grpc.server import ServicerContext, UnaryMethod, unary
from qmtl.runtime.pipeline import Interceptor

Server: TypeAlias = grpc.aio.Server
# The `interceptors=` parameter of a generated adapter: first = outermost, as on HTTP.
Interceptors: TypeAlias = Sequence[Interceptor]

__all__ = [
    "Interceptor",
    "Interceptors",
    "Server",
    "ServicerContext",
    "TokenVerifier",
    "UnaryMethod",
    "unary",
]
