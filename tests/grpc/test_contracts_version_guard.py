"""The contracts-version guard over a real gRPC call: FAILED_PRECONDITION with E_CONTRACT_VERSION
in the error detail for another major, the version in every answer's trailers, and GrpcCaller
sending it."""

from __future__ import annotations

import grpc
import pytest

from qmtl.runtime import contracts_version
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.grpc import GrpcCaller, error_from_rpc_error
from tests.grpc.support import AUTHENTICATED, Recorder, bearer, fixture_handler, serve, service_spec
from tests.http.surface import token

HEADER = "qmtl-contracts-version"
SPOKEN = contracts_version.SPOKEN
MAJOR = int(SPOKEN.split(".")[0])
RPC = AUTHENTICATED[0]


def metadata(version: str | None) -> tuple[tuple[str, str], ...]:
    auth = bearer(token(*RPC.spec.access.scopes))
    return auth if version is None else (*auth, (HEADER, version))


@pytest.mark.parametrize("peer", [f"{MAJOR + 1}.0.0", f"{MAJOR - 1}.8.0"])
async def test_another_major_is_failed_precondition_before_the_handler(peer: str) -> None:
    recorder = Recorder()
    async with serve(RPC.service, fixture_handler(RPC.service, recorder)) as served:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.method(RPC)(RPC.request(), metadata=metadata(peer), timeout=10)

    exc = caught.value
    assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
    received = error_from_rpc_error(exc)
    assert received.wire_code == "E_CONTRACT_VERSION"
    assert peer in received.message
    assert SPOKEN in received.message
    assert received.details["peer_version"] == peer
    assert (HEADER, SPOKEN) in tuple(exc.trailing_metadata() or ())
    assert recorder.calls == []


async def test_a_malformed_version_is_invalid_argument() -> None:
    recorder = Recorder()
    async with serve(RPC.service, fixture_handler(RPC.service, recorder)) as served:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.method(RPC)(RPC.request(), metadata=metadata("2"), timeout=10)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_from_rpc_error(caught.value).wire_code == "E_INVALID_ARGUMENT"
    assert recorder.calls == []


@pytest.mark.parametrize("peer", [None, SPOKEN, f"{MAJOR}.12.0"])
async def test_a_supported_major_or_no_version_is_served_and_told_the_version(
    peer: str | None,
) -> None:
    recorder = Recorder()
    async with serve(RPC.service, fixture_handler(RPC.service, recorder)) as served:
        call = served.method(RPC)(RPC.request(), metadata=metadata(peer), timeout=10)
        reply = await call
        trailers = tuple(await call.trailing_metadata() or ())

    assert reply == RPC.response()
    assert (HEADER, SPOKEN) in trailers
    assert [c.ctx.headers.get(HEADER) for c in recorder.calls] == [peer]


async def test_grpc_caller_sends_the_spoken_version() -> None:
    recorder = Recorder()
    async with serve(RPC.service, fixture_handler(RPC.service, recorder)) as served:
        caller = GrpcCaller(
            f"127.0.0.1:{served.port}",
            token=token(*RPC.spec.access.scopes),
            service=service_spec(RPC.service),
        )
        try:
            await caller.call(RPC.spec, RPC.request(), timeout=10)
        finally:
            await caller.aclose()

    assert [c.ctx.headers.get(HEADER) for c in recorder.calls] == [SPOKEN]


async def test_grpc_caller_gets_e_contract_version_from_a_server_of_another_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server supports only the next major: the caller's version is outside its range.
    monkeypatch.setattr(contracts_version, "SUPPORTED_MAJORS", frozenset({MAJOR + 1}))
    recorder = Recorder()
    async with serve(RPC.service, fixture_handler(RPC.service, recorder)) as served:
        caller = GrpcCaller(
            f"127.0.0.1:{served.port}",
            token=token(*RPC.spec.access.scopes),
            service=service_spec(RPC.service),
        )
        try:
            with pytest.raises(QmtlError) as caught:
                await caller.call(RPC.spec, RPC.request(), timeout=10)
        finally:
            await caller.aclose()

    assert caught.value.wire_code == "E_CONTRACT_VERSION"
    assert SPOKEN in caught.value.message
    assert recorder.calls == []
