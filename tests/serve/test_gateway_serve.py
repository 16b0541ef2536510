"""serve() with the generated GatewayService surface: one Base subclass behind all three listeners.

Also what each listener answers when `Accept` leaves the encoding open (public JSON, internal
protobuf), that an explicit `Accept` wins, and `json_emit_defaults`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from qmtl.common.v1 import error_pb2
from qmtl.gateway.v1 import gateway_service_grpc, gateway_service_http, gateway_service_pb2_grpc
from qmtl.gateway.v1.gateway_service_handler import GatewayServiceBase
from qmtl.gateway.v1.strategy_messages_pb2 import (
    ListStrategiesRequest,
    ListStrategiesResponse,
    RetryStrategyRequest,
    RetryStrategyResponse,
)
from qmtl.runtime import codec
from qmtl.runtime.auth import HmacTokenVerifier, issue_token
from qmtl.runtime.context import Context
from qmtl.runtime.http.server import load_document
from qmtl.runtime.serve import ServeConfig, Served, ServiceBinding

SECRET = b"tests-serve-gateway-secret"
VERIFIER = HmacTokenVerifier(SECRET)
READ = {"Authorization": f"Bearer {issue_token(SECRET, 'test:reader', ['strategies:read'])}"}
ADMIN_TOKEN = issue_token(SECRET, "test:admin", ["strategies:admin", "health:read"])
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LIST = "/v1/gateway/strategies"

GATEWAY = ServiceBinding(
    name="qmtl.gateway.v1.GatewayService",
    public_routes=gateway_service_http.gateway_service_public_routes,
    internal_routes=gateway_service_http.gateway_service_internal_routes,
    add_to_grpc_server=gateway_service_grpc.add_gateway_service_to_server,
    public_openapi=load_document("qmtl.gateway.v1", "openapi/gateway.public.openapi.json"),
    internal_openapi=load_document("qmtl.gateway.v1", "openapi/gateway.internal.openapi.json"),
)


class CountingGateway(GatewayServiceBase):
    """Retries are counted; the strategy list has one entry per retry so far."""

    def __init__(self) -> None:
        self.retried: list[str] = []

    async def retry_strategy(
        self, request: RetryStrategyRequest, ctx: Context
    ) -> RetryStrategyResponse:
        self.retried.append(ctx.transport)
        return RetryStrategyResponse(strategy_id=request.strategy_id)

    async def list_strategies(
        self, request: ListStrategiesRequest, ctx: Context
    ) -> ListStrategiesResponse:
        reply = ListStrategiesResponse()
        for index in range(len(self.retried)):
            reply.strategies.add(strategy_id=f"s-{index}")
        return reply


class Gateway:
    def __init__(self, served: Served, handler: CountingGateway) -> None:
        self.served, self.handler = served, handler

    def url(self, listener: str, path: str) -> str:
        return f"http://127.0.0.1:{getattr(self.served, f'{listener}_port')}{path}"


async def _serve(*, json_emit_defaults: bool = False) -> AsyncIterator[Gateway]:
    handler = CountingGateway()
    config = ServeConfig(
        public_port=0, internal_port=0, grpc_port=0, json_emit_defaults=json_emit_defaults
    )
    served = Served(handler, VERIFIER, GATEWAY, config=config)
    task = asyncio.create_task(served.run())
    await served.wait_started()
    yield Gateway(served, handler)
    served.stop()
    await task


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async for running in _serve():
        yield running


@pytest.fixture
async def gateway_emitting_defaults() -> AsyncIterator[Gateway]:
    async for running in _serve(json_emit_defaults=True):
        yield running


async def test_http_and_grpc_reach_the_same_handler_instance(gateway: Gateway) -> None:
    async with httpx.AsyncClient() as http:
        retried = await http.post(
            gateway.url("internal", "/v1/gateway/internal/strategies/s-1/retry"),
            headers={**ADMIN, "content-type": codec.PROTOBUF},
        )
        assert retried.status_code == 200, retried.text
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.served.grpc_port}") as channel:
            stub = gateway_service_pb2_grpc.GatewayServiceStub(channel)
            reply = await stub.RetryStrategy(
                RetryStrategyRequest(strategy_id="s-2"),
                metadata=(("authorization", f"Bearer {ADMIN_TOKEN}"),),
            )
        assert reply.strategy_id == "s-2"
        listed = await http.get(gateway.url("public", LIST), headers=READ)
    assert gateway.handler.retried == ["http", "grpc"]
    assert listed.headers["content-type"] == codec.JSON  # the public default
    assert [s["strategyId"] for s in listed.json()["strategies"]] == ["s-0", "s-1"]


async def test_an_open_accept_gets_json_in_public_and_protobuf_in_internal(
    gateway: Gateway,
) -> None:
    async with httpx.AsyncClient() as http:
        for accept in (None, "*/*", "application/*"):
            headers = {} if accept is None else {"accept": accept}
            public = await http.get(gateway.url("public", LIST), headers={**READ, **headers})
            assert (public.status_code, public.headers["content-type"]) == (200, codec.JSON)
            # Not implemented by CountingGateway: the 501 body follows the same default.
            internal = await http.get(
                gateway.url("internal", "/v1/gateway/internal/health"), headers={**ADMIN, **headers}
            )
            assert internal.status_code == 501
            assert internal.headers["content-type"] == codec.PROTOBUF
            detail = error_pb2.ErrorDetail.FromString(internal.content)
            assert detail.code == "E_UNIMPLEMENTED"


async def test_an_explicit_accept_wins_on_either_listener(gateway: Gateway) -> None:
    async with httpx.AsyncClient() as http:
        public = await http.get(
            gateway.url("public", LIST), headers={**READ, "accept": codec.PROTOBUF}
        )
        assert public.headers["content-type"] == codec.PROTOBUF
        assert ListStrategiesResponse.FromString(public.content) == ListStrategiesResponse()
        internal = await http.get(
            gateway.url("internal", "/v1/gateway/internal/health"),
            headers={**ADMIN, "accept": codec.JSON},
        )
        assert internal.headers["content-type"] == codec.JSON
        assert internal.json()["code"] == "E_UNIMPLEMENTED"


async def test_json_leaves_out_default_values_unless_the_server_is_told(
    gateway: Gateway, gateway_emitting_defaults: Gateway
) -> None:
    async with httpx.AsyncClient() as http:
        plain = await http.get(gateway.url("public", LIST), headers=READ)
        full = await http.get(gateway_emitting_defaults.url("public", LIST), headers=READ)
    assert json.loads(plain.content) == {}
    assert json.loads(full.content) == {"strategies": []}


async def test_each_listener_documents_its_own_api_at_docs(gateway: Gateway) -> None:
    async with httpx.AsyncClient() as http:
        for listener, marker in (("public", "(public)"), ("internal", "(internal)")):
            page = await http.get(gateway.url(listener, "/docs"))
            assert page.status_code == 200
            assert f"qmtl.gateway.v1.GatewayService {marker}" in page.text
            document = await http.get(gateway.url(listener, "/openapi.json"))
            assert document.content == getattr(GATEWAY, f"{listener}_openapi")
