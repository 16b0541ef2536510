"""InProcessCaller: an RpcCaller calling a peer's handler in this process (the embedded mode).

With `--backend memory` every service runs in one process, and a service calls another's
handler object directly instead of over gRPC. The call still runs the serving pipeline
(qmtl.runtime.pipeline): the rpc's access rule is checked against the caller's principal by
`pipeline.authenticate`, the interceptors run, and the deadline bounds the handler, so scopes,
errors and timeouts are those a gRPC caller meets. Request and reply cross as their serialized
bytes, parsed into new messages: the two sides never share a mutable message, and what one
side sends is what the wire contract carries. docs/api/RPC-CALLER.md describes the behaviour.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TypeVar

from google.protobuf import message

from qmtl.runtime import error_mapping, pipeline
from qmtl.runtime.auth import Principal, TokenVerifier
from qmtl.runtime.client_retry import RetryPolicy
from qmtl.runtime.context import Context
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.rpc_caller import (
    DEFAULT_TIMEOUT,
    call_with_retries,
    check_call,
    check_timeout,
    closed_error,
)
from qmtl.runtime.spec import RpcSpec, ServiceSpec

__all__ = ["InProcessCaller"]

Req = TypeVar("Req", bound=message.Message)
Resp = TypeVar("Resp", bound=message.Message)

# What the pipeline's authentication is shown for a caller with a principal: any bearer value
# does, since the verifier below answers with that principal without reading it.
_IN_PROCESS_AUTHORIZATION = "Bearer in-process"


class _Given:
    """A TokenVerifier whose every token stands for one principal, already authenticated."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    async def verify(self, token: str) -> Principal:
        return self.principal


class _NoToken:
    """The verifier of a caller without a principal: never asked, since no token is sent
    (the pipeline refuses the call unless the rpc allows anonymous callers)."""

    async def verify(self, token: str) -> Principal:
        raise QmtlError.unauthenticated("this caller has no service token")


_NO_TOKEN = _NoToken()


class InProcessCaller:
    """RpcCaller calling `handler` (the peer's handler object) for the rpcs of `service`.

    `principal` is who the caller is (the subject and scopes its service token would carry);
    None is a caller without a token (E_UNAUTHENTICATED unless the rpc allows anonymous
    callers). The handler sees a Context with that principal, no headers, the call's deadline
    and transport "grpc" (the internal-listener semantics: no public view, `set_status` has
    no effect). `default_timeout`, `retry` and `interceptors` are as on GrpcCaller and
    qmtl.runtime.serve.
    """

    def __init__(
        self,
        handler: object,
        service: ServiceSpec,
        *,
        principal: Principal | None,
        default_timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        interceptors: Sequence[pipeline.Interceptor] = (),
    ) -> None:
        self.handler = handler
        self.service = service
        self.principal = principal
        self._default_timeout = check_timeout("default_timeout", default_timeout)
        self._retry = RetryPolicy() if retry is None else retry
        self._verifier: TokenVerifier = _NO_TOKEN if principal is None else _Given(principal)
        self._authorization = None if principal is None else _IN_PROCESS_AUTHORIZATION
        # Bound once, as a transport binds its routes at startup.
        self._bound = {
            rpc.full_name: pipeline.bind(handler, rpc, interceptors) for rpc in service.rpcs
        }
        self._closed = False

    async def call(
        self,
        rpc: RpcSpec[Req, Resp],
        request: Req,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the per-call deadline is API
    ) -> Resp:
        """`rpc`'s reply from the handler, or the QmtlError it raised (RpcCaller.call)."""
        check_call(self.service, rpc, request)
        seconds = self._default_timeout if timeout is None else check_timeout("timeout", timeout)
        sent = request.SerializeToString()
        bound = self._bound[rpc.full_name]

        async def attempt(deadline: float) -> Resp:
            if self._closed:
                raise closed_error(self)
            if deadline <= time.monotonic():
                raise QmtlError.timeout(f"{rpc.full_name}: the call's deadline passed")
            try:
                principal = await pipeline.authenticate(rpc, self._authorization, self._verifier)
                ctx = Context(rpc, "grpc", principal, {}, deadline)
                reply = await bound(rpc.request.FromString(sent), ctx)
                if type(reply) is not rpc.response:
                    raise TypeError(
                        f"{rpc.full_name} returned {type(reply).__name__}, "
                        f"not {rpc.response.DESCRIPTOR.full_name}"
                    )
            except Exception as exc:
                # As the gRPC adapter answers: a QmtlError as its ErrorDetail, anything else
                # E_INTERNAL (logged with its traceback, which never reaches the caller). The
                # caller gets the error rebuilt from the detail, as a gRPC caller does, not
                # the callee's own object.
                detail = error_mapping.as_qmtl_error(exc).detail
                raise QmtlError.from_detail(detail) from None
            return rpc.response.FromString(reply.SerializeToString())

        return await call_with_retries(
            rpc, attempt, deadline=time.monotonic() + seconds, policy=self._retry
        )

    async def aclose(self) -> None:
        """Later calls fail with E_UNAVAILABLE; the handler is the caller's to close."""
        self._closed = True

    def __repr__(self) -> str:
        return f"InProcessCaller({type(self.handler).__name__}, {self.service.full_name})"
