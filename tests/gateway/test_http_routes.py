"""The generated HTTP routes over GatewayHandler: submit on the internal app, reads on the public
app, writes refused on the public app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from google.protobuf import json_format

from qmtl.common.v1 import error_pb2
from qmtl.dag.v1 import node_status_pb2
from qmtl.gateway.v1 import gateway_service_http as http
from qmtl.gateway.v1 import node_status_messages_pb2, strategy_messages_pb2
from qmtl.runtime.auth import HmacTokenVerifier, issue_token
from tests.gateway.gateway_support import COMPLETED, QUEUED, GatewayEnv, submit_request

SECRET = b"gateway-handler-routes-secret"
VERIFIER = HmacTokenVerifier(SECRET)
PROTOBUF, JSON = "application/x-protobuf", "application/json"


def bearer(*scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, 'test:caller', scopes)}"}


async def client_of(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_submit_on_the_internal_app_answers_202_then_the_public_reads_see_it(
    env: GatewayEnv,
) -> None:
    internal = http.create_gateway_service_internal_app(env.handler, VERIFIER)
    public = http.create_gateway_service_public_app(env.handler, VERIFIER)
    request = submit_request()
    async for client in client_of(internal):
        submitted = await client.post(
            "/v1/gateway/internal/strategies",
            content=request.SerializeToString(),
            headers={**bearer("strategies:submit"), "Content-Type": PROTOBUF, "Accept": PROTOBUF},
        )
        assert submitted.status_code == 202, submitted.text
        answer = strategy_messages_pb2.SubmitStrategyResponse.FromString(submitted.content)
        assert answer.state == QUEUED
        unscoped = await client.post(
            "/v1/gateway/internal/strategies",
            content=request.SerializeToString(),
            headers={**bearer("strategies:read"), "Content-Type": PROTOBUF},
        )
        assert unscoped.status_code == 403
        duplicate = await client.post(
            "/v1/gateway/internal/strategies",
            content=json_format.MessageToJson(request),
            headers={**bearer("strategies:submit"), "Content-Type": JSON, "Accept": JSON},
        )
        assert duplicate.status_code == 409
        error = json_format.Parse(duplicate.text, error_pb2.ErrorDetail())
        assert error.code == "E_DUPLICATE"
        assert error.details["strategy_id"] == answer.strategy_id
        assert "Traceback" not in duplicate.text
    env.worker()
    await env.wait_for_state(answer.strategy_id, COMPLETED)
    async for client in client_of(public):
        read = await client.get(
            f"/v1/gateway/strategies/{answer.strategy_id}/status",
            headers={**bearer("strategies:read"), "Accept": JSON},
        )
        assert read.status_code == 200, read.text
        status = json_format.Parse(read.text, strategy_messages_pb2.GetStrategyStatusResponse())
        assert status.state == COMPLETED
        assert len(status.queue_map.queues) == 2
        listed = await client.get(
            "/v1/gateway/strategies", headers={**bearer("strategies:read"), "Accept": JSON}
        )
        assert listed.status_code == 200
        anonymous = await client.get(f"/v1/gateway/strategies/{answer.strategy_id}")
        assert anonymous.status_code == 401
        missing = await client.get(
            "/v1/gateway/strategies/nope", headers={**bearer("strategies:read"), "Accept": JSON}
        )
        assert missing.status_code == 404


async def test_the_public_app_refuses_writes_with_405(env: GatewayEnv) -> None:
    public = http.create_gateway_service_public_app(env.handler, VERIFIER)
    request = submit_request()
    async for client in client_of(public):
        for path in (
            "/v1/gateway/strategies",
            "/v1/gateway/internal/strategies",
            "/v1/gateway/strategies/x/status",
        ):
            refused = await client.post(
                path,
                content=request.SerializeToString(),
                headers={**bearer("strategies:submit"), "Content-Type": PROTOBUF},
            )
            assert refused.status_code in (404, 405), (path, refused.status_code)
        refused = await client.post(
            "/v1/gateway/strategies",
            content=request.SerializeToString(),
            headers={**bearer("strategies:submit"), "Content-Type": PROTOBUF},
        )
        assert refused.status_code == 405
    assert (await env.store.list(limit=10))[0] == []


async def test_node_status_is_reported_on_the_internal_app(env: GatewayEnv) -> None:
    response, _ = await env.submit(submit_request())
    node = (await env.strategy(response.strategy_id)).dag.nodes[0].node_id
    internal = http.create_gateway_service_internal_app(env.handler, VERIFIER)
    report = node_status_messages_pb2.ReportNodeStatusRequest(
        node_states=[
            node_status_pb2.NodeState(node_id=node, status=node_status_pb2.NODE_STATUS_RUNNING)
        ]
    )
    async for client in client_of(internal):
        answer = await client.post(
            f"/v1/gateway/internal/strategies/{response.strategy_id}/node-status",
            content=report.SerializeToString(),
            headers={**bearer("strategies:report"), "Content-Type": PROTOBUF, "Accept": JSON},
        )
        assert answer.status_code == 200, answer.text
        assert (
            json_format.Parse(
                answer.text, node_status_messages_pb2.ReportNodeStatusResponse()
            ).accepted
            == 1
        )
    [stored] = await env.store.node_states(response.strategy_id)
    assert stored.node_id == node
