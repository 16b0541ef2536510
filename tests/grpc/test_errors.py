"""Errors over a real gRPC call: the handler's QmtlError arrives as the same QmtlError."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.message import Message

from qmtl.runtime import error_mapping
from qmtl.runtime.context import Context
from qmtl.runtime.errors import ErrorCode, ErrorInfo, QmtlError, known_codes
from qmtl.runtime.grpc import error_from_rpc_error
from tests.grpc.support import (
    AUTHENTICATED,
    RPCS,
    GrpcRpc,
    Recorder,
    bearer,
    fixture_handler,
    ids,
    serve,
    stub_module,
)
from tests.http.surface import token

ONE_RPC = AUTHENTICATED[0]
ONE_PER_SERVICE = list({rpc.service.full_name: rpc for rpc in RPCS}.values())


async def _fail_with(rpc: GrpcRpc, exc: BaseException) -> grpc.aio.AioRpcError:
    recorder = Recorder(failures={rpc.spec.method: exc})
    async with serve(rpc.service, fixture_handler(rpc.service, recorder)) as served:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.method(rpc)(
                rpc.request(), metadata=bearer(token(*rpc.spec.access.scopes)), timeout=10
            )
    assert len(recorder.calls) == 1
    return caught.value


@pytest.mark.parametrize("info", known_codes(), ids=lambda info: info.wire_code)
async def test_a_handlers_error_arrives_with_its_status_and_detail(info: ErrorInfo) -> None:
    raised = QmtlError(info.code, "it went wrong", details={"why": "because"}, retry_after=3)

    exc = await _fail_with(ONE_RPC, raised)

    assert exc.code().value[0] == info.grpc_code
    assert exc.details() == "it went wrong"
    received = error_from_rpc_error(exc)
    assert (received.code, received.wire_code, received.message) == (
        info.code,
        info.wire_code,
        "it went wrong",
    )
    assert received.details == {"why": "because"}
    assert received.retryable is info.retryable
    assert received.retry_after == 3
    assert received.detail == raised.to_proto()


async def test_an_unexpected_exception_is_internal_without_its_text() -> None:
    exc = await _fail_with(ONE_RPC, RuntimeError("secret: db password in a traceback"))

    assert exc.code() == grpc.StatusCode.INTERNAL
    received = error_from_rpc_error(exc)
    assert received.code == ErrorCode.ERROR_CODE_INTERNAL
    everything = repr((exc.details(), exc.trailing_metadata(), exc.debug_error_string()))
    assert "secret" not in everything
    assert "Traceback" not in everything


@pytest.mark.parametrize("rpc", ONE_PER_SERVICE, ids=ids)
async def test_an_rpc_the_handler_does_not_implement_is_unimplemented(rpc: GrpcRpc) -> None:
    recorder = Recorder()
    handler = fixture_handler(rpc.service, recorder, skip=[rpc.spec.method])
    async with serve(rpc.service, handler) as served:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.method(rpc)(
                rpc.request(), metadata=bearer(token(*rpc.spec.access.scopes)), timeout=10
            )

    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    received = error_from_rpc_error(caught.value)
    assert received.wire_code == "E_UNIMPLEMENTED"
    assert received.details == {"rpc": rpc.spec.full_name}


async def test_a_handler_lacking_the_method_altogether_is_unimplemented_too() -> None:
    # Not a Base subclass: a plain object implementing nothing (never an AttributeError/500).
    rpc = ONE_RPC
    async with serve(rpc.service, object()) as served:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.method(rpc)(
                rpc.request(), metadata=bearer(token(*rpc.spec.access.scopes)), timeout=10
            )

    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error_from_rpc_error(caught.value).wire_code == "E_UNIMPLEMENTED"


async def test_a_server_that_is_not_there_is_unavailable() -> None:
    rpc = ONE_RPC
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await server.stop(None)  # nothing listens on `port` any more
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = getattr(stub_module(rpc.service), f"{rpc.service.name}Stub")(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(stub, rpc.spec.name)(rpc.request(), timeout=5)

    received = error_from_rpc_error(caught.value)
    assert received.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    assert received.retryable is True
    assert received.details == {"grpc_code": grpc.StatusCode.UNAVAILABLE.value[0]}


def test_the_detail_trailer_key_is_binary_metadata() -> None:
    # gRPC only carries bytes values under `-bin` keys.
    assert error_mapping.GRPC_DETAIL_KEY.endswith("-bin")


async def test_a_header_the_handler_sets_arrives_as_initial_metadata() -> None:
    rpc = ONE_RPC
    handler = fixture_handler(rpc.service, Recorder())
    original = getattr(handler, rpc.spec.method)

    async def with_header(request: Message, ctx: Context) -> Message:
        ctx.set_header("X-Request-Id", "r-42")
        reply: Message = await original(request, ctx)
        return reply

    setattr(handler, rpc.spec.method, with_header)
    async with serve(rpc.service, handler) as served:
        call = served.method(rpc)(
            rpc.request(), metadata=bearer(token(*rpc.spec.access.scopes)), timeout=10
        )
        reply = await call
        initial = await call.initial_metadata()

    assert reply == rpc.response()
    assert ("x-request-id", "r-42") in list(initial)


async def test_a_sync_callers_error_converts_the_same() -> None:
    rpc = ONE_RPC
    raised = QmtlError.not_found("no such strategy", strategy_id="s-1")
    recorder = Recorder(failures={rpc.spec.method: raised})

    def call_sync(port: int) -> grpc.RpcError:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = getattr(stub_module(rpc.service), f"{rpc.service.name}Stub")(channel)
            metadata = bearer(token(*rpc.spec.access.scopes))
            try:
                getattr(stub, rpc.spec.name)(rpc.request(), metadata=metadata, timeout=10)
            except grpc.RpcError as exc:
                return exc
        raise AssertionError("the call succeeded")

    async with serve(rpc.service, fixture_handler(rpc.service, recorder)) as served:
        # A blocking stub in a thread, so the server keeps running on this loop.
        exc = await asyncio.to_thread(call_sync, served.port)

    received = error_from_rpc_error(exc)
    assert (received.wire_code, received.message) == ("E_NOT_FOUND", "no such strategy")
    assert received.details == {"strategy_id": "s-1"}
