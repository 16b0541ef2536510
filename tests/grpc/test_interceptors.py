"""Interceptors given to the gRPC adapter run as on HTTP: in order, around the handler."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf.message import Message

from qmtl.runtime.context import Context
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.grpc import error_from_rpc_error
from qmtl.runtime.pipeline import Next
from tests.grpc.support import AUTHENTICATED, Recorder, bearer, fixture_handler, serve
from tests.http.surface import token

RPC = AUTHENTICATED[0]


@dataclass
class Tracing:
    name: str
    log: list[tuple[str, str, str, str]] = field(default_factory=list)

    async def __call__(self, request: Message, ctx: Context, call_next: Next) -> Message:
        self.log.append((self.name, "in", ctx.transport, ctx.rpc.full_name))
        reply = await call_next(request, ctx)
        self.log.append((self.name, "out", ctx.transport, ctx.rpc.full_name))
        return reply


async def test_interceptors_run_in_order_and_see_transport_grpc() -> None:
    log: list[tuple[str, str, str, str]] = []
    recorder = Recorder()
    chain = [Tracing("outer", log), Tracing("inner", log)]
    async with serve(RPC.service, fixture_handler(RPC.service, recorder), interceptors=chain) as s:
        await s.method(RPC)(
            RPC.request(), metadata=bearer(token(*RPC.spec.access.scopes)), timeout=10
        )

    name = RPC.spec.full_name
    assert log == [
        ("outer", "in", "grpc", name),
        ("inner", "in", "grpc", name),
        ("inner", "out", "grpc", name),
        ("outer", "out", "grpc", name),
    ]
    assert len(recorder.calls) == 1


async def test_an_interceptor_may_refuse_a_call_with_a_qmtl_error() -> None:
    async def refuse(request: Message, ctx: Context, call_next: Next) -> Message:
        assert ctx.principal is not None
        raise QmtlError.permission_denied(f"{ctx.principal.subject} is blocked")

    recorder = Recorder()
    async with serve(
        RPC.service, fixture_handler(RPC.service, recorder), interceptors=[refuse]
    ) as served:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.method(RPC)(
                RPC.request(), metadata=bearer(token(*RPC.spec.access.scopes)), timeout=10
            )

    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_from_rpc_error(caught.value).message == "test:caller is blocked"
    assert recorder.calls == []


async def test_interceptors_do_not_run_for_a_call_refused_by_authentication() -> None:
    log: list[tuple[str, str, str, str]] = []
    async with serve(
        RPC.service, fixture_handler(RPC.service, Recorder()), interceptors=[Tracing("t", log)]
    ) as served:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.method(RPC)(RPC.request(), timeout=10)

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert log == []
