"""The transport-neutral part of serving an rpc: authentication, interceptors and the deadline.

The HTTP endpoints (http/endpoint.py) and the gRPC adapter share it, so a handler behaves the
same on both: `bind` is called once per route at startup and returns the call the transport
makes per request, with nothing looked up per request (docs/api/HANDLERS.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, Protocol

from google.protobuf.message import Message

from qmtl.runtime import auth
from qmtl.runtime.auth import Principal, TokenVerifier
from qmtl.runtime.context import Context
from qmtl.runtime.errors import QmtlError, unimplemented
from qmtl.runtime.spec import RpcSpec

Next = Callable[[Message, Context], Awaitable[Message]]


class Interceptor(Protocol):
    """Runs around every handler call: may inspect or replace the request, ctx and reply.

    `call_next(request, ctx)` runs the rest of the chain (the next interceptor, or the handler);
    raise QmtlError to answer an error instead. Interceptors see the errors of the handler
    and of the deadline (E_TIMEOUT), not those of authentication or request decoding.
    """

    async def __call__(self, request: Message, ctx: Context, call_next: Next) -> Message: ...


def _missing(rpc: RpcSpec[Any, Any]) -> Next:
    async def unimplemented_rpc(request: Message, ctx: Context) -> Message:
        raise unimplemented(rpc.full_name)

    return unimplemented_rpc


def _with_deadline(call: Next) -> Next:
    async def bounded(request: Message, ctx: Context) -> Message:
        deadline = ctx.deadline
        if deadline is None:
            return await call(request, ctx)
        if deadline <= time.monotonic():
            raise QmtlError.timeout("the call's deadline passed before the handler ran")
        timer = asyncio.timeout_at(_loop_time(deadline))
        try:
            async with timer:
                return await call(request, ctx)
        except TimeoutError:
            # Only our own timer becomes E_TIMEOUT; a TimeoutError of the handler's making
            # stays what it is (an internal error).
            if timer.expired():
                raise QmtlError.timeout("the call's deadline passed") from None
            raise

    return bounded


def _loop_time(deadline: float) -> float:
    # Deadlines are time.monotonic() instants; the loop's clock may have another origin.
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())


def _chain(interceptor: Interceptor, call_next: Next) -> Next:
    async def intercepted(request: Message, ctx: Context) -> Message:
        return await interceptor(request, ctx, call_next)

    return intercepted


def _bind(
    handler: object,
    rpc: RpcSpec[Any, Any],
    interceptors: Sequence[Interceptor],
    *,
    deadline: bool,
) -> Next:
    method: Next | None = getattr(handler, rpc.method, None)
    call = method if method is not None else _missing(rpc)
    if deadline:
        call = _with_deadline(call)
    for interceptor in reversed(interceptors):
        call = _chain(interceptor, call)
    return call


def bind(handler: object, rpc: RpcSpec[Any, Any], interceptors: Sequence[Interceptor]) -> Next:
    """The call a transport makes for `rpc`: `handler`'s method under the interceptors.

    The first interceptor is the outermost; the deadline (ctx.deadline) is enforced innermost,
    so interceptors see its E_TIMEOUT. A handler without the method answers E_UNIMPLEMENTED
    (501), so a service generated against an older schema keeps serving.
    """
    return _bind(handler, rpc, interceptors, deadline=True)


class Bound(NamedTuple):
    """`bind`'s call (`bounded`) and the same chain without deadline enforcement (`plain`).

    A transport that knows a call has no deadline (most HTTP requests) makes the plain call
    and saves a coroutine frame per request; with no interceptors it is the handler's method.
    """

    plain: Next
    bounded: Next


def bind_both(
    handler: object, rpc: RpcSpec[Any, Any], interceptors: Sequence[Interceptor]
) -> Bound:
    """`bind`, plus the chain to use for calls whose ctx.deadline is None."""
    return Bound(
        _bind(handler, rpc, interceptors, deadline=False),
        _bind(handler, rpc, interceptors, deadline=True),
    )


async def authenticate(
    rpc: RpcSpec[Any, Any], authorization: str | None, verifier: TokenVerifier
) -> Principal | None:
    """The caller of `rpc` from its bearer token, as the rpc's access rule requires.

    401 E_UNAUTHENTICATED without a valid token (None on allow_anonymous rpcs called without
    one), 403 E_PERMISSION_DENIED when a required scope is missing.
    """
    access = rpc.access
    return await auth.authenticate(
        authorization, verifier, access.scopes, allow_anonymous=access.allow_anonymous
    )
