"""The contracts-version guard on HTTP: 412 for another major, the header on every answer, and
the typed client sending it. Served through Gateway's generated app and client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from google.protobuf import json_format

from qmtl.common.v1.error_pb2 import ErrorDetail
from qmtl.gateway.v1 import gateway_service_http as http
from qmtl.gateway.v1.gateway_service_client import AsyncGatewayServiceClient
from qmtl.gateway.v1.gateway_service_handler import GatewayServiceBase
from qmtl.gateway.v1.queue_messages_pb2 import GetQueuesByTagRequest, GetQueuesByTagResponse
from qmtl.runtime import contracts_version
from qmtl.runtime.context import Context
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.http.server import create_app
from tests.http.surface import VERIFIER, token

HEADER = "qmtl-contracts-version"
SPOKEN = contracts_version.SPOKEN
MAJOR = int(SPOKEN.split(".")[0])
QUEUES = "/v1/gateway/queues/by-tag?tags=BTC&interval=60"
JSON = "application/json"


class Recording(GatewayServiceBase):
    """Answers GetQueuesByTag and records the headers of every call that reached it."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    async def get_queues_by_tag(
        self, request: GetQueuesByTagRequest, ctx: Context
    ) -> GetQueuesByTagResponse:
        self.headers.append(dict(ctx.headers))
        return GetQueuesByTagResponse()


@pytest.fixture
def handler() -> Recording:
    return Recording()


@pytest.fixture
async def client(handler: Recording) -> AsyncIterator[httpx.AsyncClient]:
    app = http.create_gateway_service_public_app(handler, VERIFIER)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as opened:
        yield opened


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {token('queues:read')}", "Accept": JSON}


def error_of(response: httpx.Response) -> ErrorDetail:
    return json_format.Parse(response.text, ErrorDetail())


@pytest.mark.parametrize("peer", [f"{MAJOR + 1}.0.0", f"{MAJOR - 1}.4.2"])
async def test_another_major_is_refused_412_before_the_handler(
    client: httpx.AsyncClient, handler: Recording, peer: str
) -> None:
    response = await client.get(QUEUES, headers={**auth(), HEADER: peer})

    assert response.status_code == 412
    detail = error_of(response)
    assert detail.code == "E_CONTRACT_VERSION"
    assert peer in detail.message
    assert SPOKEN in detail.message
    assert response.headers[HEADER] == SPOKEN
    assert handler.headers == []


async def test_the_guard_comes_before_authentication(
    client: httpx.AsyncClient, handler: Recording
) -> None:
    response = await client.get(QUEUES, headers={HEADER: f"{MAJOR + 1}.0.0", "Accept": JSON})

    assert response.status_code == 412
    assert error_of(response).code == "E_CONTRACT_VERSION"


@pytest.mark.parametrize("peer", [None, SPOKEN, f"{MAJOR}.0.0", f"{MAJOR}.31.7"])
async def test_a_supported_major_or_no_header_is_served_and_told_the_version(
    client: httpx.AsyncClient, handler: Recording, peer: str | None
) -> None:
    headers = auth() if peer is None else {**auth(), HEADER: peer}

    response = await client.get(QUEUES, headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers[HEADER] == SPOKEN
    assert len(handler.headers) == 1
    assert handler.headers[0].get(HEADER) == peer


async def test_a_malformed_header_is_400_invalid_argument(
    client: httpx.AsyncClient, handler: Recording
) -> None:
    response = await client.get(QUEUES, headers={**auth(), HEADER: "v2"})

    assert response.status_code == 400
    assert error_of(response).code == "E_INVALID_ARGUMENT"
    assert handler.headers == []


async def test_other_errors_and_routing_answers_carry_the_version_too(
    client: httpx.AsyncClient,
) -> None:
    unauthenticated = await client.get(QUEUES, headers={"Accept": JSON})
    unknown = await client.get("/v1/gateway/no-such-route", headers={"Accept": JSON})

    assert (unauthenticated.status_code, unknown.status_code) == (401, 404)
    assert unauthenticated.headers[HEADER] == unknown.headers[HEADER] == SPOKEN


async def test_a_non_200_success_carries_the_version() -> None:
    class Accepted(Recording):
        async def get_queues_by_tag(
            self, request: GetQueuesByTagRequest, ctx: Context
        ) -> GetQueuesByTagResponse:
            ctx.set_status(202)
            return GetQueuesByTagResponse()

    app = create_app(
        http.gateway_service_public_routes(Accepted(), VERIFIER), openapi=None, title="t"
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get(QUEUES, headers=auth())

    assert response.status_code == 202
    assert response.headers[HEADER] == SPOKEN


async def test_the_typed_client_sends_the_spoken_version(
    client: httpx.AsyncClient, handler: Recording
) -> None:
    typed = AsyncGatewayServiceClient(client, None, token=token("queues:read"))

    await typed.get_queues_by_tag(GetQueuesByTagRequest(tags=["BTC"], interval=60))

    assert [seen[HEADER] for seen in handler.headers] == [SPOKEN]


async def test_the_typed_client_gets_e_contract_version_from_a_server_of_another_range(
    client: httpx.AsyncClient, handler: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server supports only the next major: our client's version is outside its range.
    monkeypatch.setattr(contracts_version, "SUPPORTED_MAJORS", frozenset({MAJOR + 1}))
    typed = AsyncGatewayServiceClient(client, None, token=token("queues:read"))

    with pytest.raises(QmtlError) as caught:
        await typed.get_queues_by_tag(GetQueuesByTagRequest(tags=["BTC"], interval=60))

    assert (caught.value.wire_code, caught.value.status) == ("E_CONTRACT_VERSION", 412)
    assert SPOKEN in caught.value.message
    assert handler.headers == []
