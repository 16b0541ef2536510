"""A failed call raises the QmtlError the server raised: one type, on both sides of the wire."""

from __future__ import annotations

import httpx
import pytest

from qmtl.dagmanager.v1.dag_manager_service_client import AsyncDagManagerServiceClient
from qmtl.dagmanager.v1.gc_messages_pb2 import TriggerGcRequest
from qmtl.dagmanager.v1.node_messages_pb2 import GetNodeRequest
from qmtl.runtime.client import NO_RETRY, Encoding, PathValueError, QmtlError
from qmtl.runtime.errors import ErrorCode
from tests.client.support import Apps, ServedApps, asgi_client, sync_client


@pytest.mark.parametrize("encoding", [Encoding.PROTOBUF, Encoding.JSON], ids=lambda e: e.name)
async def test_the_servers_error_arrives_as_the_same_qmtl_error(
    apps: Apps, encoding: Encoding
) -> None:
    raised_there = QmtlError.not_found("no such node", node_id="blake3:00")
    apps.handler.failures["get_node"] = [raised_there]

    with pytest.raises(QmtlError) as raised:
        await asgi_client(apps, encoding=encoding).get_node(GetNodeRequest(node_id="blake3:00"))

    error = raised.value
    assert type(error) is QmtlError
    assert (error.code, error.wire_code, error.status) == (
        ErrorCode.ERROR_CODE_NOT_FOUND,
        "E_NOT_FOUND",
        404,
    )
    assert (error.message, error.details, error.retryable) == (
        "no such node",
        {"node_id": "blake3:00"},
        False,
    )
    assert error.detail == raised_there.to_proto()


def test_retry_after_and_retryable_survive_the_trip(served: ServedApps) -> None:
    served.apps.handler.failures["trigger_gc"] = [QmtlError.unavailable("busy", retry_after=1.5)]

    with sync_client(served) as client, pytest.raises(QmtlError) as raised:
        client.trigger_gc(TriggerGcRequest())

    assert (raised.value.status, raised.value.wire_code) == (503, "E_UNAVAILABLE")
    assert (raised.value.retryable, raised.value.retry_after) == (True, 1.5)


async def test_a_missing_token_is_the_servers_401(apps: Apps) -> None:
    with pytest.raises(QmtlError) as raised:
        await asgi_client(apps, token=None).get_node(GetNodeRequest(node_id="n"))

    assert (raised.value.status, raised.value.wire_code) == (401, "E_UNAUTHENTICATED")
    assert apps.handler.calls == []


async def test_an_unknown_wire_code_from_a_newer_server_keeps_its_string() -> None:
    def newer_server(request: httpx.Request) -> httpx.Response:
        body = b'{"code": "E_FROM_THE_FUTURE", "message": "new", "retryable": true}'
        return httpx.Response(418, content=body, headers={"content-type": "application/json"})

    transport = httpx.AsyncClient(transport=httpx.MockTransport(newer_server), base_url="http://n")
    client = AsyncDagManagerServiceClient(transport, retry=NO_RETRY)

    with pytest.raises(QmtlError) as raised:
        await client.get_node(GetNodeRequest(node_id="n"))

    assert (raised.value.wire_code, raised.value.status) == ("E_FROM_THE_FUTURE", 418)
    assert raised.value.code == ErrorCode.ERROR_CODE_UNSPECIFIED


async def test_a_bare_proxy_503_is_retryable_and_keeps_its_retry_after_header() -> None:
    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, content=b"<html>down</html>", headers={"Retry-After": "7"})

    transport = httpx.AsyncClient(transport=httpx.MockTransport(proxy), base_url="http://n")
    client = AsyncDagManagerServiceClient(transport, retry=NO_RETRY)

    with pytest.raises(QmtlError) as raised:
        await client.get_node(GetNodeRequest(node_id="n"))

    assert (raised.value.wire_code, raised.value.status) == ("E_UNAVAILABLE", 503)
    assert (raised.value.retryable, raised.value.retry_after) == (True, 7.0)


async def test_a_path_value_the_server_would_refuse_is_refused_before_sending(apps: Apps) -> None:
    with pytest.raises(PathValueError) as raised:
        await asgi_client(apps).get_node(GetNodeRequest(node_id="a/b"))

    assert isinstance(raised.value, QmtlError)
    assert (raised.value.status, raised.value.wire_code) == (0, "E_INVALID_ARGUMENT")
    assert raised.value.details == {"parameter": "nodeId"}
    assert apps.handler.calls == []


async def test_a_call_without_its_listener_is_a_typed_error(apps: Apps) -> None:
    client = AsyncDagManagerServiceClient(None, "http://127.0.0.1:1")

    with pytest.raises(QmtlError, match="public listener") as raised:
        await client.get_node(GetNodeRequest(node_id="n"))

    assert (raised.value.status, raised.value.details) == (0, {"listener": "public"})
