"""Request bodies are bounded while they stream in (issue 8, item 9; docs/operations/http.md).

The apps are the generated ones, given a 64 KiB limit through QMTL_HTTP_MAX_BODY_BYTES (the
generated factories take no arguments beyond handler and verifier). A body over the limit is
a 413 E_PAYLOAD_TOO_LARGE before the handler runs, and the app stops reading it there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from google.protobuf import json_format
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qmtl.common.v1.error_pb2 import ErrorDetail
from qmtl.runtime.http import limits
from qmtl.runtime.http.server import create_app, create_internal_app, create_public_app
from tests.http.conftest import ServiceApps, build_apps
from tests.http.raw_asgi import JSON, PROTOBUF, call
from tests.http.surface import (
    INTERNAL,
    Op,
    auth_headers,
    body_json,
    ids,
    request_fixture,
    url_path,
)

LIMIT = 64 * 1024
CHUNK = 16 * 1024
# What an unbounded server would have read: 16 MB, a thousand chunks.
FLOOD_CHUNKS = 1000
WRITES = [op for op in INTERNAL if op.body]


def test_every_internal_write_is_covered() -> None:
    assert len(WRITES) >= 5


@pytest.fixture
def limited(op: Op, monkeypatch: pytest.MonkeyPatch) -> ServiceApps:
    monkeypatch.setenv(limits.ENV_MAX_BODY_BYTES, str(LIMIT))
    return build_apps(op)


@pytest.fixture
async def http(limited: ServiceApps) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=limited.internal)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


class Flood:
    """An async body without a length, counting how many chunks the app pulled."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk


def error_of(response: httpx.Response) -> ErrorDetail:
    return ErrorDetail.FromString(response.content)


def padded_json(op: Op, size: int) -> bytes:
    """The op's JSON request fixture, padded with trailing spaces to exactly `size` bytes."""
    text = json.dumps(body_json(op)).encode()
    assert len(text) < size
    return text + b" " * (size - len(text))


def split(body: bytes) -> list[bytes]:
    return [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]


def headers_for(op: Op, content_type: str) -> dict[str, str]:
    return {**auth_headers(op), "Accept": PROTOBUF, "Content-Type": content_type}


@pytest.mark.parametrize("op", WRITES, ids=ids)
async def test_chunked_body_over_the_limit_is_413_and_reading_stops_at_the_limit(
    op: Op, limited: ServiceApps, http: httpx.AsyncClient
) -> None:
    flood = Flood([b"\x00" * CHUNK] * FLOOD_CHUNKS)

    response = await http.post(
        url_path(op, request_fixture(op)), content=flood, headers=headers_for(op, PROTOBUF)
    )

    assert "content-length" not in response.request.headers  # sent chunked
    assert response.status_code == 413
    detail = error_of(response)
    assert detail.code == "E_PAYLOAD_TOO_LARGE"
    assert json_format.MessageToDict(detail.details)["max_body_bytes"] == LIMIT
    assert limited.handler.calls == []
    # The chunk that crossed the limit is the last one read: the rest never left the client.
    assert flood.pulled == LIMIT // CHUNK + 1


@pytest.mark.parametrize("op", WRITES, ids=ids)
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_body_of_exactly_the_limit_is_served(
    op: Op, limited: ServiceApps, http: httpx.AsyncClient, chunked: bool
) -> None:
    body = padded_json(op, LIMIT)
    content = Flood(split(body)) if chunked else body

    response = await http.post(
        url_path(op, request_fixture(op)), content=content, headers=headers_for(op, JSON)
    )

    assert response.is_success, response.content
    assert [call.request for call in limited.handler.calls] == [request_fixture(op)]


@pytest.mark.parametrize("op", WRITES, ids=ids)
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_body_one_byte_over_the_limit_is_413(
    op: Op, limited: ServiceApps, http: httpx.AsyncClient, chunked: bool
) -> None:
    body = padded_json(op, LIMIT + 1)
    content = Flood(split(body)) if chunked else body

    response = await http.post(
        url_path(op, request_fixture(op)), content=content, headers=headers_for(op, JSON)
    )

    assert (response.status_code, error_of(response).code) == (413, "E_PAYLOAD_TOO_LARGE")
    assert limited.handler.calls == []


@pytest.mark.parametrize("op", WRITES, ids=ids)
async def test_declared_content_length_over_the_limit_is_refused_before_reading(
    op: Op, limited: ServiceApps
) -> None:
    headers = {**headers_for(op, PROTOBUF), "Content-Length": str(150 * 1024 * 1024)}

    response = await call(
        limited.internal,
        "POST",
        url_path(op, request_fixture(op)).encode(),
        headers=list(headers.items()),
        body_chunks=[b"\x00" * CHUNK] * FLOOD_CHUNKS,
    )

    assert (response.status, response.error().code) == (413, "E_PAYLOAD_TOO_LARGE")
    assert response.receive_calls == 0
    assert limited.handler.calls == []


async def echo_length(request: Request) -> Response:
    return Response(str(len(await request.body())))


def echo_app(max_body_bytes: int) -> tuple[httpx.AsyncClient, int]:
    app = create_internal_app(
        [Route("/echo", echo_length, methods=["POST"])], openapi=None, max_body_bytes=max_body_bytes
    )
    limit: int = app.max_body_bytes
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    return client, limit


async def test_the_factories_take_the_limit_as_an_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(limits.ENV_MAX_BODY_BYTES, "5")  # the argument wins over the variable
    client, limit = echo_app(max_body_bytes=10)

    async with client:
        served = await client.post("/echo", content=b"x" * 10)
        refused = await client.post("/echo", content=Flood([b"x" * 6, b"x" * 5]))

    assert limit == 10
    assert (served.status_code, served.text) == (200, "10")
    assert refused.status_code == 413
    assert ErrorDetail.FromString(refused.content).code == "E_PAYLOAD_TOO_LARGE"
    public = create_public_app([], openapi=None, max_body_bytes=7)
    assert public.max_body_bytes == 7
    assert create_app([], openapi=None, title="t", max_body_bytes=8).max_body_bytes == 8


def test_default_limit_is_at_most_16_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(limits.ENV_MAX_BODY_BYTES, raising=False)

    assert limits.resolve_max_body_bytes(None) == limits.DEFAULT_MAX_BODY_BYTES <= 16 * 2**20
    assert limits.resolve_max_body_bytes(None, {limits.ENV_MAX_BODY_BYTES: "2048"}) == 2048


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [("lots", "whole number"), ("1.5", "whole number"), ("0", "at least"), ("-3", "at least")],
)
def test_unusable_limit_variable_is_a_config_error(raw: str, complaint: str) -> None:
    with pytest.raises(limits.HttpConfigError, match=complaint):
        limits.resolve_max_body_bytes(None, {limits.ENV_MAX_BODY_BYTES: raw})


@pytest.mark.parametrize("value", [0, -1, True])
def test_unusable_limit_argument_is_a_config_error(value: int) -> None:
    with pytest.raises(limits.HttpConfigError):
        create_internal_app([], openapi=None, max_body_bytes=value)
