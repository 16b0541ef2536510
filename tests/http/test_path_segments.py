"""A path parameter never spans segments (issue 8, item 10; docs/operations/http.md).

The exploit: the client sent `get_strategy("a/status")` as `/strategies/a%2Fstatus`, the
server routed on the decoded path and ran GetStrategyStatus("a"). Now the client refuses the
value before sending, and the server refuses an encoded `/` and dot-segment ids with a 400.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qmtl.dagmanager.v1.node_messages_pb2 import GetNodeRequest
from qmtl.gateway.v1.gateway_service_client import AsyncGatewayServiceClient
from qmtl.gateway.v1.strategy_messages_pb2 import GetStrategyRequest
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.http.client import PathValueError, Var, build_path
from qmtl.runtime.http.server import create_internal_app
from tests.http.conftest import ServiceApps, build_apps
from tests.http.raw_asgi import PROTOBUF, RawResponse, call
from tests.http.surface import (
    OPERATIONS,
    Op,
    auth_headers,
    client_module,
    ids,
    request_fixture,
    token,
    url_path,
)

PATHED = [op for op in OPERATIONS if op.path_fields]
GET_STRATEGY = next(op for op in OPERATIONS if op.id == "GatewayService.GetStrategy")
_HOLE = "@HOLE@"


def test_the_surface_has_path_parameters_on_both_listeners() -> None:
    assert any(op.public for op in PATHED)
    assert any(not op.public for op in PATHED)


def first_field(op: Op) -> str:
    return op.path_fields[0]


def json_name(op: Op) -> str:
    return str(op.request_class.DESCRIPTOR.fields_by_name[first_field(op)].json_name)


def path_with(op: Op, raw_value: str) -> str:
    """The op's path from its request fixture, its first variable replaced by `raw_value`."""
    holed = dataclasses.replace(op, path=op.path.replace("{" + first_field(op) + "}", _HOLE))
    return url_path(holed, request_fixture(op)).replace(_HOLE, raw_value)


async def send_raw(apps: ServiceApps, op: Op, raw_path: str) -> RawResponse:
    headers = [*auth_headers(op).items(), ("Accept", PROTOBUF)]
    if op.body:
        # An empty body: the path alone sets the field, so no body/path disagreement masks it.
        headers.append(("Content-Type", PROTOBUF))
    return await call(apps.app_for(op), op.verb, raw_path.encode(), headers=headers)


def all_scopes() -> str:
    return token(*sorted({scope for op in OPERATIONS for scope in op.scopes}))


@dataclasses.dataclass
class Wire:
    """The generated async client over both apps, recording every request it sends."""

    client: Any
    sent: list[httpx.Request]


@pytest.fixture
async def wire(op: Op, apps: ServiceApps) -> AsyncIterator[Wire]:
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    hooks = {"request": [record]}
    public = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=apps.public), base_url="http://p", event_hooks=hooks
    )
    internal = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=apps.internal), base_url="http://i", event_hooks=hooks
    )
    cls = getattr(client_module(op.service), f"Async{op.service.name}Client")
    async with public, internal:
        yield Wire(cls(public, internal, token=all_scopes()), sent)


# -- the exploit, end to end ------------------------------------------------------------------


@pytest.mark.parametrize("op", [GET_STRATEGY], ids=ids)
async def test_get_strategy_of_a_slash_status_never_reaches_get_strategy_status(
    op: Op, apps: ServiceApps, wire: Wire
) -> None:
    client: AsyncGatewayServiceClient = wire.client

    with pytest.raises(PathValueError) as raised:
        await client.get_strategy(GetStrategyRequest(strategy_id="a/status"))

    error = raised.value
    assert isinstance(error, QmtlError)
    assert (error.status, error.wire_code) == (0, "E_INVALID_ARGUMENT")
    assert error.details == {"parameter": "strategyId"}
    assert wire.sent == []
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", [GET_STRATEGY], ids=ids)
@pytest.mark.parametrize("escape", ["%2F", "%2f"])
async def test_the_exploit_sent_raw_is_400_and_runs_nothing(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient, escape: str
) -> None:
    response = await client.get(
        f"/v1/gateway/strategies/a{escape}status", headers={**auth_headers(op), "Accept": PROTOBUF}
    )

    assert response.status_code == 400
    assert apps.handler.calls == []


# -- every path parameter of both services ----------------------------------------------------


@pytest.mark.parametrize("op", PATHED, ids=ids)
@pytest.mark.parametrize("value", ["a/status", "a/retry", "/", "a/b/c"])
async def test_client_refuses_a_slash_in_any_path_value(
    op: Op, apps: ServiceApps, wire: Wire, value: str
) -> None:
    request = request_fixture(op)
    setattr(request, first_field(op), value)

    with pytest.raises(PathValueError) as raised:
        await getattr(wire.client, op.python_name)(request)

    assert raised.value.details == {"parameter": json_name(op)}
    assert wire.sent == []
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", PATHED, ids=ids)
@pytest.mark.parametrize("raw", ["a%2Fstatus", "a%2fretry", "%2F", "x%2F..%2Fy"])
async def test_encoded_slash_in_any_path_value_is_400_naming_it(
    op: Op, apps: ServiceApps, raw: str
) -> None:
    response = await send_raw(apps, op, path_with(op, raw))

    detail = response.error()
    assert (response.status, detail.code) == (400, "E_INVALID_ARGUMENT"), detail.message
    assert dict(detail.details) == {"parameter": json_name(op)}
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", PATHED, ids=ids)
@pytest.mark.parametrize("raw", [".", "..", "%2e", "%2E%2E", ".%2e", "%2e."])
async def test_dot_segment_ids_are_400_naming_the_parameter(
    op: Op, apps: ServiceApps, raw: str
) -> None:
    response = await send_raw(apps, op, path_with(op, raw))

    detail = response.error()
    assert (response.status, detail.code) == (400, "E_INVALID_ARGUMENT"), detail.message
    assert dict(detail.details) == {"parameter": json_name(op)}
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", PATHED, ids=ids)
@pytest.mark.parametrize("value", [".", ".."])
async def test_client_refuses_dot_segment_ids(
    op: Op, apps: ServiceApps, wire: Wire, value: str
) -> None:
    request = request_fixture(op)
    setattr(request, first_field(op), value)

    with pytest.raises(PathValueError):
        await getattr(wire.client, op.python_name)(request)

    assert wire.sent == []


@pytest.mark.parametrize("op", PATHED, ids=ids)
@pytest.mark.parametrize("value", ["blake3:1d38ab", "blake3:a.b", "...", "..a", "a..", "a.b:c"])
async def test_ids_with_colons_and_inner_dots_still_round_trip(
    op: Op, apps: ServiceApps, wire: Wire, value: str
) -> None:
    request = request_fixture(op)
    setattr(request, first_field(op), value)

    await getattr(wire.client, op.python_name)(request)

    assert [call.request for call in apps.handler.calls] == [request]


async def test_encoded_slash_outside_any_parameter_is_400() -> None:
    op = next(op for op in OPERATIONS if op.id == "GatewayService.ListStrategies")
    apps = build_apps(op)

    response = await send_raw(apps, op, "/v1/gateway%2Fstrategies")

    detail = response.error()
    assert (response.status, detail.code) == (400, "E_INVALID_ARGUMENT"), detail.message
    assert "parameter" not in detail.details
    assert apps.handler.calls == []


# -- `**` variables span segments by design -----------------------------------------------------


async def echo_name(request: Request) -> Response:
    return Response(request.path_params["name"])


async def test_a_spanning_parameter_still_takes_an_encoded_slash() -> None:
    app = create_internal_app([Route("/files/{name:path}", echo_name)], openapi=None)

    response = await call(app, "GET", b"/files/a%2Fb/c")

    assert (response.status, response.body) == (200, b"a/b/c")


def test_build_path_keeps_slashes_of_a_spanning_variable_but_not_dot_segments() -> None:
    path, _ = build_path(
        ("/v1/files/", Var("node_id", spans=True)), GetNodeRequest(node_id="a/b:c")
    )
    assert path == "/v1/files/a/b:c"

    for value in ("a/../b", "./a", "a/."):
        with pytest.raises(PathValueError, match="dot segment"):
            build_path(("/v1/files/", Var("node_id", spans=True)), GetNodeRequest(node_id=value))


def test_path_value_error_is_a_typed_client_error() -> None:
    with pytest.raises(PathValueError) as raised:
        build_path(("/v1/nodes/", Var("node_id")), GetNodeRequest(node_id="a/b"))

    assert isinstance(raised.value, QmtlError)
    assert raised.value.error_code != 0
