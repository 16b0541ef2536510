"""The anonymous health routes say ready or not and nothing more; the detail is internal.

Fields marked `(qmtl.api.v1.internal_only)` (health components, instance and build
identifiers, graph size) are cleared by the public routes in both encodings and left out of
the public OpenAPI documents; the internal GetHealthDetail routes need a token with
`health:read` and serve them all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format, message

from qmtl.api.v1 import visibility_pb2
from qmtl.common.v1 import health_pb2
from tests.http.conftest import build_apps
from tests.http.surface import OPERATIONS, Op, fixture_bytes, ids, response_fixture, token

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi"
HEALTH_ROUTES = [op for op in OPERATIONS if op.method.name in ("GetHealth", "GetStatus")]
DETAIL_ROUTES = [op for op in OPERATIONS if op.method.name == "GetHealthDetail"]
PUBLIC_HEALTH_FIELDS = {"service", "state", "ready"}


def full_health() -> health_pb2.ServiceHealth:
    health = health_pb2.ServiceHealth.FromString(fixture_bytes("qmtl.common.v1.ServiceHealth"))
    # The point of the test: every field the public must not see is there to leak.
    assert health.components
    assert health.components[0].adapter
    assert health.components[0].detail
    assert health.components[0].HasField("latency")
    assert health.instance_id
    assert health.version
    assert health.contract_version
    assert health.HasField("started_at")
    return health


def full_reply(op: Op) -> message.Message:
    reply = response_fixture(op)
    reply.health.CopyFrom(full_health())  # type: ignore[attr-defined]
    return reply


def internal_only_fields(desc: Any) -> set[str]:
    return {
        f.json_name for f in desc.fields if f.GetOptions().Extensions[visibility_pb2.internal_only]
    }


def test_the_surface_has_anonymous_health_routes_and_internal_detail_routes() -> None:
    assert {op.service.name for op in HEALTH_ROUTES} == {"GatewayService", "DagManagerService"}
    assert all(op.public and op.anonymous for op in HEALTH_ROUTES)
    assert {op.service.name for op in DETAIL_ROUTES} == {"GatewayService", "DagManagerService"}
    for op in DETAIL_ROUTES:
        assert (op.public, op.verb, op.scopes) == (False, "GET", ("health:read",))
        assert "/internal/" in op.path


@pytest.mark.parametrize("op", HEALTH_ROUTES, ids=ids)
@pytest.mark.parametrize("accept", [PROTOBUF, JSON])
async def test_anonymous_health_route_serves_only_service_state_and_ready(
    op: Op, accept: str
) -> None:
    reply = full_reply(op)
    handed = type(reply)()
    handed.CopyFrom(reply)

    async def answer(request: message.Message, ctx: object) -> message.Message:
        return handed

    apps = build_apps(op, {op.python_name: answer})
    transport = httpx.ASGITransport(app=apps.public)
    async with httpx.AsyncClient(transport=transport, base_url="http://p") as http:
        response = await http.get(op.path, headers={"Accept": accept})

    assert response.status_code == 200, response.text
    if accept == JSON:
        body = response.json()
        assert set(body) == {"health"}, "graph size and other top-level detail are internal"
        assert set(body["health"]) == {"service", "state", "ready"}
    else:
        served = op.response_class.FromString(response.content)
        assert [f.name for f, _ in served.ListFields()] == ["health"]
        health = served.health  # type: ignore[attr-defined]
        assert {f.name for f, _ in health.ListFields()} == PUBLIC_HEALTH_FIELDS
        assert health.service == full_health().service
    # The handler's message (perhaps a cached report the internal route serves) is untouched.
    assert handed == reply


@pytest.mark.parametrize("op", DETAIL_ROUTES, ids=ids)
async def test_internal_health_detail_needs_a_token_with_its_scope(op: Op) -> None:
    apps = build_apps(op)
    transport = httpx.ASGITransport(app=apps.internal)
    async with httpx.AsyncClient(transport=transport, base_url="http://i") as http:
        anonymous = await http.get(op.path)
        unscoped = await http.get(
            op.path, headers={"Authorization": f"Bearer {token('strategies:read')}"}
        )
    assert anonymous.status_code == 401
    assert unscoped.status_code == 403
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", DETAIL_ROUTES, ids=ids)
@pytest.mark.parametrize("accept", [PROTOBUF, JSON])
async def test_internal_health_detail_serves_every_field(op: Op, accept: str) -> None:
    reply = type(response_fixture(op))()
    reply.health.CopyFrom(full_health())  # type: ignore[attr-defined]

    async def answer(request: message.Message, ctx: object) -> message.Message:
        return reply

    apps = build_apps(op, {op.python_name: answer})
    transport = httpx.ASGITransport(app=apps.internal)
    headers = {"Authorization": f"Bearer {token('health:read')}", "Accept": accept}
    async with httpx.AsyncClient(transport=transport, base_url="http://i") as http:
        response = await http.get(op.path, headers=headers)

    assert response.status_code == 200, response.text
    if accept == JSON:
        assert response.json() == json_format.MessageToDict(reply)
    else:
        assert op.response_class.FromString(response.content) == reply


def test_public_routes_reach_every_internal_only_field_of_health() -> None:
    hidden = internal_only_fields(health_pb2.ServiceHealth.DESCRIPTOR)
    assert hidden == {"components", "instanceId", "version", "contractVersion", "startedAt"}


def _schemas(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(path.read_text())["components"]["schemas"]
    return found


@pytest.mark.parametrize(
    "name",
    [
        "gateway.public.openapi.json",
        "dagmanager.public.openapi.json",
        "public.openapi.json",
    ],
)
def test_public_documents_have_no_internal_only_field(name: str) -> None:
    schemas = _schemas(DOCS / name)
    assert "qmtl.common.v1.ComponentHealth" not in schemas, "reachable only through components"
    health = schemas["qmtl.common.v1.ServiceHealth"]
    assert set(health["properties"]) == PUBLIC_HEALTH_FIELDS
    for op in HEALTH_ROUTES:
        response = schemas.get(op.method.output_type.full_name)
        if response is not None:
            assert set(response["properties"]) == {"health"}


@pytest.mark.parametrize(
    "name", ["gateway.internal.openapi.json", "dagmanager.internal.openapi.json"]
)
def test_internal_documents_keep_the_detail(name: str) -> None:
    schemas = _schemas(DOCS / name)
    health = schemas["qmtl.common.v1.ServiceHealth"]
    assert internal_only_fields(health_pb2.ServiceHealth.DESCRIPTOR) <= set(health["properties"])
    assert "qmtl.common.v1.ComponentHealth" in schemas
