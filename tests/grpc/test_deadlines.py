"""Deadlines: the caller's gRPC deadline is the handler's ctx.deadline, and it is enforced."""

from __future__ import annotations

import asyncio
import time
from typing import Any, NoReturn

import grpc
import pytest

from qmtl.runtime import error_mapping
from qmtl.runtime.grpc import unary
from tests.grpc.support import AUTHENTICATED, Recorder, bearer, fixture_handler, serve
from tests.http.surface import VERIFIER, token

RPC = AUTHENTICATED[0]


def _metadata() -> tuple[tuple[str, str], ...]:
    return bearer(token(*RPC.spec.access.scopes))


async def _never() -> None:
    await asyncio.Event().wait()


async def test_a_deadline_the_handler_exceeds_is_deadline_exceeded() -> None:
    recorder = Recorder(waits={RPC.spec.method: _never})
    async with serve(RPC.service, fixture_handler(RPC.service, recorder)) as served:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.method(RPC)(RPC.request(), metadata=_metadata(), timeout=0.5)

    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    [call] = recorder.calls
    # The handler saw the caller's deadline, not none: at most the 0.5 s it was given.
    assert call.ctx.deadline is not None
    assert 0 < call.ctx.deadline - started <= 0.5 + 0.05


async def test_a_call_without_a_deadline_gives_the_handler_none() -> None:
    recorder = Recorder()
    async with serve(RPC.service, fixture_handler(RPC.service, recorder)) as served:
        await served.method(RPC)(RPC.request(), metadata=_metadata())

    [call] = recorder.calls
    assert call.ctx.deadline is None
    assert call.ctx.time_remaining() is None


class Aborted(Exception):
    pass


class FakeServicerContext:
    """The parts of grpc.aio.ServicerContext the adapter uses, recording the abort."""

    def __init__(self, remaining: float | None, metadata: tuple[tuple[str, str], ...]) -> None:
        self.remaining = remaining
        self.metadata = metadata
        self.aborted: tuple[grpc.StatusCode, str, Any] | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def time_remaining(self) -> float | None:
        return self.remaining

    async def send_initial_metadata(self, metadata: object) -> None:
        return None

    async def abort(self, code: grpc.StatusCode, details: str, trailers: Any) -> NoReturn:
        self.aborted = (code, details, trailers)
        raise Aborted


async def test_the_server_answers_e_timeout_when_its_own_deadline_passes() -> None:
    # Over a real channel the caller's own timer fires at the same instant, so the server's
    # answer is checked here, on the servicer method itself.
    handler = fixture_handler(RPC.service, Recorder(waits={RPC.spec.method: _never}))
    method = unary(RPC.spec, handler, VERIFIER)
    context = FakeServicerContext(0.05, _metadata())

    # The outer bound only turns a missing deadline into a failure instead of a hang.
    with pytest.raises(Aborted):
        async with asyncio.timeout(10):
            await method(RPC.request(), context)  # type: ignore[arg-type]

    assert context.aborted is not None
    status, _, trailers = context.aborted
    assert status == grpc.StatusCode.DEADLINE_EXCEEDED
    assert error_mapping.from_grpc(4, trailers).wire_code == "E_TIMEOUT"


async def test_a_deadline_already_passed_never_runs_the_handler() -> None:
    recorder = Recorder()
    method = unary(RPC.spec, fixture_handler(RPC.service, recorder), VERIFIER)
    context = FakeServicerContext(-1.0, _metadata())

    # The outer bound only turns a missing deadline into a failure instead of a hang.
    with pytest.raises(Aborted):
        async with asyncio.timeout(10):
            await method(RPC.request(), context)  # type: ignore[arg-type]

    assert context.aborted is not None
    assert context.aborted[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert recorder.calls == []


def test_the_servicer_method_is_named_after_the_rpc() -> None:
    method = unary(RPC.spec, object(), VERIFIER)
    assert method.__name__ == f"serve_{RPC.spec.method}"
