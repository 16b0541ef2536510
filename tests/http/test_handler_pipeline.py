"""The handler pipeline on HTTP: ctx, interceptors, deadlines, E_UNIMPLEMENTED, listener defaults.

Served through Gateway's generated app, so the generated data (ServiceSpec, HttpRoute tables)
and the runtime endpoint are exercised together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from qmtl.common.v1.error_pb2 import ErrorDetail
from qmtl.gateway.v1 import gateway_service_http as http
from qmtl.gateway.v1.gateway_service_handler import GATEWAY_SERVICE, GatewayServiceBase
from qmtl.gateway.v1.queue_messages_pb2 import GetQueuesByTagRequest, GetQueuesByTagResponse
from qmtl.gateway.v1.strategy_messages_pb2 import (
    GetStrategyRequest,
    GetStrategyResponse,
    RetryStrategyRequest,
    RetryStrategyResponse,
)
from qmtl.runtime.auth import HmacTokenVerifier, issue_token
from qmtl.runtime.context import Context
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.interceptors import AccessLog
from qmtl.runtime.pipeline import Next

SECRET = b"pipeline-test-secret"
VERIFIER = HmacTokenVerifier(SECRET)
PROTOBUF, JSON = "application/x-protobuf", "application/json"
QUEUES = "/v1/gateway/queues/by-tag?tags=BTC&interval=60"


def bearer(*scopes: str, subject: str = "test:caller") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, subject, scopes)}"}


async def client_of(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def error_of(response: httpx.Response) -> ErrorDetail:
    if response.headers["content-type"].startswith(JSON):
        return json_format.Parse(response.text, ErrorDetail())
    return ErrorDetail.FromString(response.content)


class QueuesOnly(GatewayServiceBase):
    """Implements GetQueuesByTag only; every other rpc keeps the Base's E_UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.contexts: list[Context] = []
        self.release = asyncio.Event()
        self.block = False

    async def get_queues_by_tag(
        self, request: GetQueuesByTagRequest, ctx: Context
    ) -> GetQueuesByTagResponse:
        self.contexts.append(ctx)
        if self.block:
            await self.release.wait()  # never set: only the deadline ends the call
        return GetQueuesByTagResponse()


async def test_an_rpc_the_service_does_not_implement_answers_501_unimplemented() -> None:
    app = http.create_gateway_service_public_app(QueuesOnly(), VERIFIER)
    async for client in client_of(app):
        response = await client.get(
            "/v1/gateway/strategies/s-1", headers={**bearer("strategies:read"), "Accept": JSON}
        )
    assert response.status_code == 501
    detail = error_of(response)
    assert detail.code == "E_UNIMPLEMENTED"
    assert dict(detail.details) == {"rpc": "qmtl.gateway.v1.GatewayService.GetStrategy"}


async def test_a_handler_lacking_the_method_answers_501_not_500() -> None:
    class Nothing:
        pass

    handler: Any = Nothing()  # deliberately not a GatewayServiceHandler
    app = http.create_gateway_service_internal_app(handler, VERIFIER)
    async for client in client_of(app):
        response = await client.post(
            "/v1/gateway/internal/strategies/s-1/retry",
            headers={**bearer("strategies:admin"), "Content-Type": JSON},
            content=b"{}",
        )
    assert response.status_code == 501, response.text
    assert error_of(response).code == "E_UNIMPLEMENTED"


async def test_interceptors_run_in_order_around_the_handler_and_see_rpc_and_principal() -> None:
    seen: list[tuple[str, str, str | None]] = []

    def recorder(name: str) -> Any:
        async def intercept(request: Message, ctx: Context, call_next: Next) -> Message:
            subject = ctx.principal.subject if ctx.principal else None
            seen.append((f"{name} in", ctx.rpc.full_name, subject))
            reply = await call_next(request, ctx)
            seen.append((f"{name} out", ctx.rpc.name, subject))
            return reply

        return intercept

    handler = QueuesOnly()
    app = http.create_gateway_service_public_app(
        handler, VERIFIER, interceptors=[recorder("first"), recorder("second")]
    )
    async for client in client_of(app):
        response = await client.get(QUEUES, headers=bearer("queues:read", subject="sdk:alice"))
    assert response.status_code == 200, response.text
    full = "qmtl.gateway.v1.GatewayService.GetQueuesByTag"
    assert seen == [
        ("first in", full, "sdk:alice"),
        ("second in", full, "sdk:alice"),
        ("second out", "GetQueuesByTag", "sdk:alice"),
        ("first out", "GetQueuesByTag", "sdk:alice"),
    ]
    (ctx,) = handler.contexts
    assert ctx.rpc is GATEWAY_SERVICE.rpc("GetQueuesByTag")
    assert ctx.transport == "http"
    assert ctx.headers["authorization"].startswith("Bearer ")


async def test_an_interceptor_can_answer_an_error_for_every_route() -> None:
    async def refuse(request: Message, ctx: Context, call_next: Next) -> Message:
        raise QmtlError.unavailable("maintenance", retry_after=7)

    handler = QueuesOnly()
    app = http.create_gateway_service_public_app(handler, VERIFIER, interceptors=[refuse])
    async for client in client_of(app):
        response = await client.get(QUEUES, headers=bearer("queues:read"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert handler.contexts == []


async def test_ctx_set_status_and_set_header_reach_the_response() -> None:
    class Accepting(GatewayServiceBase):
        async def retry_strategy(
            self, request: RetryStrategyRequest, ctx: Context
        ) -> RetryStrategyResponse:
            ctx.set_status(202)
            ctx.set_header("Location", f"/v1/gateway/strategies/{request.strategy_id}/status")
            return RetryStrategyResponse()

    app = http.create_gateway_service_internal_app(Accepting(), VERIFIER)
    async for client in client_of(app):
        response = await client.post(
            "/v1/gateway/internal/strategies/s-9/retry",
            headers={**bearer("strategies:admin"), "Content-Type": JSON, "Accept": PROTOBUF},
            content=b"{}",
        )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == "/v1/gateway/strategies/s-9/status"
    assert response.headers["content-type"] == PROTOBUF
    assert RetryStrategyResponse.FromString(response.content) == RetryStrategyResponse()


async def test_a_deadline_already_passed_answers_504_timeout_without_calling_the_handler() -> None:
    handler = QueuesOnly()
    app = http.create_gateway_service_public_app(handler, VERIFIER)
    async for client in client_of(app):
        response = await client.get(
            QUEUES, headers={**bearer("queues:read"), "qmtl-timeout-ms": "0"}
        )
    assert response.status_code == 504, response.text
    assert error_of(response).code == "E_TIMEOUT"
    assert handler.contexts == []


async def test_a_handler_outliving_its_deadline_answers_504_and_interceptors_see_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = QueuesOnly()
    handler.block = True
    app = http.create_gateway_service_public_app(handler, VERIFIER, interceptors=[AccessLog()])
    with caplog.at_level(logging.INFO, logger="qmtl.access"):
        async for client in client_of(app):
            response = await client.get(
                QUEUES, headers={**bearer("queues:read"), "qmtl-timeout-ms": "50"}
            )
    assert response.status_code == 504, response.text
    assert error_of(response).code == "E_TIMEOUT"
    (ctx,) = handler.contexts
    assert ctx.deadline is not None
    (record,) = [r for r in caplog.records if r.name == "qmtl.access"]
    assert record.__dict__["code"] == "E_TIMEOUT"


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", "1" * 13])
async def test_a_malformed_timeout_header_is_a_400(value: str) -> None:
    handler = QueuesOnly()
    app = http.create_gateway_service_public_app(handler, VERIFIER)
    async for client in client_of(app):
        response = await client.get(
            QUEUES, headers={**bearer("queues:read"), "qmtl-timeout-ms": value}
        )
    assert response.status_code == 400, response.text
    assert error_of(response).code == "E_INVALID_ARGUMENT"
    assert handler.contexts == []


async def test_access_log_names_rpc_principal_code_and_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = http.create_gateway_service_public_app(QueuesOnly(), VERIFIER, interceptors=[AccessLog()])
    with caplog.at_level(logging.INFO, logger="qmtl.access"):
        async for client in client_of(app):
            ok = await client.get(QUEUES, headers=bearer("queues:read", subject="sdk:bob"))
            missing = await client.get(
                "/v1/gateway/strategies/s-1", headers=bearer("strategies:read", subject="sdk:bob")
            )
    assert (ok.status_code, missing.status_code) == (200, 501)
    records = [r for r in caplog.records if r.name == "qmtl.access"]
    assert [(r.__dict__["rpc"], r.__dict__["principal"], r.__dict__["code"]) for r in records] == [
        ("qmtl.gateway.v1.GatewayService.GetQueuesByTag", "sdk:bob", "OK"),
        ("qmtl.gateway.v1.GatewayService.GetStrategy", "sdk:bob", "E_UNIMPLEMENTED"),
    ]
    assert all(r.__dict__["ms"] >= 0 for r in records)
    assert "http qmtl.gateway.v1.GatewayService.GetQueuesByTag principal=sdk:bob code=OK" in (
        records[0].getMessage()
    )


async def test_without_accept_public_answers_json_and_internal_protobuf() -> None:
    class Both(QueuesOnly):
        async def get_strategy(
            self, request: GetStrategyRequest, ctx: Context
        ) -> GetStrategyResponse:
            return GetStrategyResponse()

        async def retry_strategy(
            self, request: RetryStrategyRequest, ctx: Context
        ) -> RetryStrategyResponse:
            return RetryStrategyResponse()

    handler = Both()
    public = http.create_gateway_service_public_app(handler, VERIFIER)
    internal = http.create_gateway_service_internal_app(handler, VERIFIER)
    async for client in client_of(public):
        read = await client.get("/v1/gateway/strategies/s-1", headers=bearer("strategies:read"))
        refused = await client.get("/v1/gateway/strategies/s-1")
    async for client in client_of(internal):
        write = await client.post(
            "/v1/gateway/internal/strategies/s-1/retry",
            headers={**bearer("strategies:admin"), "Content-Type": JSON},
            content=b"{}",
        )
    assert read.headers["content-type"] == JSON
    assert refused.status_code == 401
    assert refused.headers["content-type"] == JSON
    assert write.headers["content-type"] == PROTOBUF
