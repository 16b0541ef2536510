"""The access matrix over gRPC, for every rpc of every service, as tests/http runs it over HTTP.

Each rpc's RpcSpec.access decides: no token, a token that does not verify, a token without the
rpc's scopes, and one with them. The refusals carry the same ErrorDetail as on HTTP, in the
`qmtl-error-detail-bin` trailer, and never reach the handler.
"""

from __future__ import annotations

import grpc
import pytest

from qmtl.runtime.auth import issue_token
from qmtl.runtime.grpc import error_from_rpc_error
from tests.grpc.support import (
    ANONYMOUS,
    AUTHENTICATED,
    HTTP_OPERATIONS,
    RPCS,
    SERVICES,
    GrpcRpc,
    Recorder,
    bearer,
    fixture_handler,
    ids,
    serve,
)
from tests.http.surface import token

# Well formed and signed, but with a secret the server's verifier does not hold.
OTHER_KEY_TOKEN = issue_token(b"not-the-servers-secret", "test:caller", ["queues:read"])
GARBLED = [
    ("authorization", "Bearer not-a-token"),
    ("authorization", "Basic dXNlcjpwYXNz"),
    ("authorization", "Bearer a.b"),
    ("authorization", f"Bearer {OTHER_KEY_TOKEN}"),
]
ALL_SCOPES = sorted({scope for rpc in RPCS for scope in rpc.spec.access.scopes})


def test_every_service_and_rpc_is_in_the_matrix() -> None:
    # An empty table would make every parametrized test below vacuous.
    assert {s.full_name for s in SERVICES} >= {
        "qmtl.gateway.v1.GatewayService",
        "qmtl.dagmanager.v1.DagManagerService",
    }
    assert len(RPCS) == sum(len(s.methods) for s in SERVICES)
    assert AUTHENTICATED
    assert ANONYMOUS


@pytest.mark.parametrize("rpc", RPCS, ids=ids)
def test_grpc_access_is_the_http_matrix_access(rpc: GrpcRpc) -> None:
    op = HTTP_OPERATIONS.get(rpc.spec.full_name)
    if op is None:  # gRPC-only: no HTTP row to agree with
        return
    access = rpc.spec.access
    assert (access.public, access.scopes, access.allow_anonymous) == (
        op.public,
        op.scopes,
        op.anonymous,
    )


async def _call(rpc: GrpcRpc, metadata: tuple[tuple[str, str], ...]) -> tuple[Recorder, object]:
    recorder = Recorder()
    async with serve(rpc.service, fixture_handler(rpc.service, recorder)) as served:
        try:
            reply = await served.method(rpc)(rpc.request(), metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return recorder, exc
    return recorder, reply


def _refusal(outcome: object, status: grpc.StatusCode, wire_code: str) -> grpc.aio.AioRpcError:
    assert isinstance(outcome, grpc.aio.AioRpcError), outcome
    assert outcome.code() == status
    assert error_from_rpc_error(outcome).wire_code == wire_code
    return outcome


@pytest.mark.parametrize("rpc", AUTHENTICATED, ids=ids)
async def test_no_token_is_unauthenticated(rpc: GrpcRpc) -> None:
    recorder, outcome = await _call(rpc, ())

    _refusal(outcome, grpc.StatusCode.UNAUTHENTICATED, "E_UNAUTHENTICATED")
    assert recorder.calls == []


@pytest.mark.parametrize("rpc", ANONYMOUS, ids=ids)
async def test_anonymous_rpc_answers_without_a_token(rpc: GrpcRpc) -> None:
    recorder, outcome = await _call(rpc, ())

    assert outcome == rpc.response()
    assert [call.ctx.principal for call in recorder.calls] == [None]


@pytest.mark.parametrize("rpc", RPCS, ids=ids)
@pytest.mark.parametrize("metadata", GARBLED, ids=lambda m: m[1][:12])
async def test_a_token_that_does_not_verify_is_unauthenticated(
    rpc: GrpcRpc, metadata: tuple[str, str]
) -> None:
    # Anonymous rpcs too: a token that is sent is always verified (docs/operations/auth.md).
    recorder, outcome = await _call(rpc, (metadata,))

    _refusal(outcome, grpc.StatusCode.UNAUTHENTICATED, "E_UNAUTHENTICATED")
    assert recorder.calls == []


@pytest.mark.parametrize("rpc", [r for r in AUTHENTICATED if r.spec.access.scopes], ids=ids)
async def test_a_token_lacking_the_rpcs_scope_is_permission_denied(rpc: GrpcRpc) -> None:
    others = sorted(set(ALL_SCOPES) - set(rpc.spec.access.scopes))

    recorder, outcome = await _call(rpc, bearer(token(*others)))

    exc = _refusal(outcome, grpc.StatusCode.PERMISSION_DENIED, "E_PERMISSION_DENIED")
    assert error_from_rpc_error(exc).details["required_scopes"] == sorted(rpc.spec.access.scopes)
    assert recorder.calls == []


@pytest.mark.parametrize("rpc", RPCS, ids=ids)
async def test_a_token_with_the_rpcs_scopes_reaches_the_handler(rpc: GrpcRpc) -> None:
    recorder, outcome = await _call(rpc, bearer(token(*rpc.spec.access.scopes)))

    assert outcome == rpc.response()
    [call] = recorder.calls
    assert call.request == rpc.request()
    assert call.ctx.transport == "grpc"
    assert call.ctx.rpc is rpc.spec
    assert call.ctx.principal is not None
    assert call.ctx.principal.subject == "test:caller"
