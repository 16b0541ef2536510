"""One servicer method per rpc, built once at startup from its RpcSpec.

A call runs the same steps as an HTTP route (qmtl.runtime.pipeline): the `authorization`
metadata is checked against the rpc's access rule, a Context (transport "grpc") is made from
the invocation metadata and the call's deadline, and the handler is called through the
interceptors. gRPC decoded the request already and encodes the reply. A QmtlError is answered
with its catalogue gRPC status, its message as the status message and its ErrorDetail in the
`qmtl-error-detail-bin` trailer; anything else is logged and answered as INTERNAL with an
E_INTERNAL detail, never a traceback. Like an HTTP route, a call whose `qmtl-contracts-version`
metadata names another major is refused first (E_CONTRACT_VERSION, FAILED_PRECONDITION), and
every answer's trailing metadata carries this server's version (qmtl.runtime.contracts_version).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar, cast

import grpc
from google.protobuf import message

from qmtl.runtime import contracts_version, error_mapping, pipeline
from qmtl.runtime.auth import TokenVerifier
from qmtl.runtime.context import Context
from qmtl.runtime.grpc.errors import metadata_pairs, status_code
from qmtl.runtime.spec import RpcSpec

Req = TypeVar("Req", bound=message.Message)
Resp = TypeVar("Resp", bound=message.Message)

ServicerContext: TypeAlias = grpc.aio.ServicerContext[Any, Any]
UnaryMethod: TypeAlias = Callable[[Req, ServicerContext], Awaitable[Resp]]

# Every answer's trailing metadata names the contracts version this server speaks.
_VERSION_TRAILER = ((contracts_version.HEADER, contracts_version.SPOKEN),)

# A time_remaining() above this is no deadline: gRPC reports an unset one as about 2**63 ns.
_NO_DEADLINE_ABOVE = 10 * 365 * 24 * 3600.0


def metadata_headers(metadata: Iterable[object] | None) -> dict[str, str]:
    """Invocation metadata as Context.headers: lower-case keys, first value of a repeated key.

    Binary entries (`-bin` keys, bytes values) are left out: headers are text on both
    transports; a handler that needs them is outside what the contract carries.
    """
    headers: dict[str, str] = {}
    for key, value in metadata_pairs(metadata):
        if isinstance(value, str):
            headers.setdefault(key.lower(), value)
    return headers


def deadline(context: ServicerContext) -> float | None:
    """The call's deadline as a time.monotonic() instant, None when the caller set none."""
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE_ABOVE:
        return None
    return time.monotonic() + remaining


def unary(
    rpc: RpcSpec[Req, Resp],
    handler: object,
    verifier: TokenVerifier,
    interceptors: Sequence[pipeline.Interceptor] = (),
) -> UnaryMethod[Req, Resp]:
    """The servicer method of a unary `rpc`, calling `handler` through `interceptors`."""
    call = pipeline.bind(handler, rpc, interceptors)

    async def method(request: Req, context: ServicerContext) -> Resp:
        try:
            headers = metadata_headers(context.invocation_metadata())
            # Before authentication, as on HTTP (http/endpoint.py): one rule, contracts_version.
            contracts_version.admit(headers.get(contracts_version.HEADER), "grpc")
            principal = await pipeline.authenticate(rpc, headers.get("authorization"), verifier)
            ctx = Context(rpc, "grpc", principal, headers, deadline(context))
            reply = await call(request, ctx)
            if ctx.response_headers:
                await context.send_initial_metadata(_initial_metadata(ctx.response_headers))
        except Exception as exc:
            # The abort below raises grpc's own exception, outside this handler on purpose.
            err = error_mapping.as_qmtl_error(exc)
        else:
            context.set_trailing_metadata(_VERSION_TRAILER)
            return cast(Resp, reply)
        trailers = error_mapping.to_grpc_trailers(err) + _VERSION_TRAILER
        await context.abort(status_code(err), err.message, trailers)

    method.__qualname__ = method.__name__ = f"serve_{rpc.method}"
    return method


def _initial_metadata(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    # gRPC metadata keys are lower-case; HTTP header names are case-insensitive anyway.
    return tuple((name.lower(), value) for name, value in headers.items())
