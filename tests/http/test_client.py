"""The generated typed clients call every rpc by the routers' rules and raise one error type."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from qmtl.runtime.client import NO_RETRY
from qmtl.runtime.codec import Encoding
from qmtl.runtime.errors import ErrorCode, QmtlError
from tests.http.conftest import ServiceApps, build_apps
from tests.http.surface import (
    AUTHENTICATED,
    OPERATIONS,
    Op,
    client_module,
    ids,
    request_fixture,
    served_response,
    token,
)

ENCODINGS = [Encoding.PROTOBUF, Encoding.JSON]


def async_client(op: Op, apps: ServiceApps, **options: Any) -> Any:
    cls = getattr(client_module(op.service), f"Async{op.service.name}Client")
    public = httpx.AsyncClient(transport=httpx.ASGITransport(app=apps.public), base_url="http://p")
    internal = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=apps.internal), base_url="http://i"
    )
    return cls(public, internal, **options)


def all_scopes() -> str:
    return token(*sorted({scope for op in OPERATIONS for scope in op.scopes}))


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
@pytest.mark.parametrize("encoding", ENCODINGS, ids=lambda e: e.name)
async def test_async_client_round_trips_every_rpc(
    op: Op, apps: ServiceApps, encoding: Encoding
) -> None:
    client = async_client(op, apps, token=all_scopes(), encoding=encoding)

    answer = await getattr(client, op.python_name)(request_fixture(op))

    assert answer == served_response(op)
    assert [call.request for call in apps.handler.calls] == [request_fixture(op)]


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_async_client_raises_the_servers_error_detail(op: Op, apps: ServiceApps) -> None:
    apps.handler.failures[op.python_name] = QmtlError.unavailable("down", retry_after=1.5)
    client = async_client(op, apps, token=all_scopes(), retry=NO_RETRY)

    with pytest.raises(QmtlError) as raised:
        await getattr(client, op.python_name)(request_fixture(op))

    error = raised.value
    assert (error.status, error.wire_code, error.retryable) == (503, "E_UNAVAILABLE", True)
    assert error.retry_after == 1.5


@pytest.mark.parametrize("op", AUTHENTICATED, ids=ids)
async def test_client_without_a_token_gets_the_401_as_a_client_error(
    op: Op, apps: ServiceApps
) -> None:
    client = async_client(op, apps)

    with pytest.raises(QmtlError) as raised:
        await getattr(client, op.python_name)(request_fixture(op))

    assert (raised.value.status, raised.value.wire_code) == (401, "E_UNAUTHENTICATED")
    assert apps.handler.calls == []


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("op", OPERATIONS[:1], ids=ids)
async def test_connection_failure_is_a_client_error_with_status_0(op: Op) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    cls = getattr(client_module(op.service), f"Async{op.service.name}Client")

    async with cls(url, url, token="t", retry=NO_RETRY) as client:
        with pytest.raises(QmtlError) as raised:
            await getattr(client, op.python_name)(request_fixture(op))

    assert (raised.value.status, raised.value.wire_code) == (0, "E_UNAVAILABLE")
    assert raised.value.retryable


# -- over real sockets ---------------------------------------------------------------------


def _listening_socket() -> socket.socket:
    # Bound and listening before uvicorn starts: a client may connect at once (the kernel
    # queues it), so no test waits for the server to come up.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


class ServerThread:
    """An app served by uvicorn on 127.0.0.1 in a thread of its own."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = _listening_socket()
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", loop="asyncio")
        )
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


Served = dict[str, tuple[ServiceApps, str, str]]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """Every service's apps on real sockets: service name -> (apps, public url, internal url)."""
    found: dict[str, tuple[ServiceApps, str, str]] = {}
    servers: list[ServerThread] = []
    for op in OPERATIONS:
        if op.service.full_name in found:
            continue
        apps = build_apps(op)
        public, internal = ServerThread(apps.public), ServerThread(apps.internal)
        servers += [public.__enter__(), internal.__enter__()]
        found[op.service.full_name] = (apps, public.url, internal.url)
    yield found
    for server in servers:
        server.__exit__()


@pytest.fixture
def on_sockets(served: Served, op: Op) -> Iterator[tuple[ServiceApps, str, str]]:
    """The served apps of `op`'s service, with the shared handler's record cleared."""
    apps, public, internal = served[op.service.full_name]
    apps.handler.calls.clear()
    apps.handler.failures.clear()
    yield apps, public, internal
    apps.handler.failures.clear()


def sync_client(op: Op, public: str | None, internal: str | None, **options: Any) -> Any:
    cls = getattr(client_module(op.service), f"{op.service.name}Client")
    return cls(public, internal, **options)


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
@pytest.mark.parametrize("encoding", ENCODINGS, ids=lambda e: e.name)
def test_sync_client_round_trips_every_rpc(
    op: Op, on_sockets: tuple[ServiceApps, str, str], encoding: Encoding
) -> None:
    apps, public, internal = on_sockets

    with sync_client(op, public, internal, token=all_scopes(), encoding=encoding) as client:
        answer = getattr(client, op.python_name)(request_fixture(op))

    assert answer == served_response(op)
    assert [call.request for call in apps.handler.calls] == [request_fixture(op)]


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
@pytest.mark.parametrize("encoding", ENCODINGS, ids=lambda e: e.name)
def test_sync_client_raises_the_servers_error_detail(
    op: Op, on_sockets: tuple[ServiceApps, str, str], encoding: Encoding
) -> None:
    apps, public, internal = on_sockets
    apps.handler.failures[op.python_name] = QmtlError.not_found("no such thing", id="x-1")

    with (
        sync_client(op, public, internal, token=all_scopes(), encoding=encoding) as client,
        pytest.raises(QmtlError) as raised,
    ):
        getattr(client, op.python_name)(request_fixture(op))

    error = raised.value
    assert (error.status, error.wire_code, error.message) == (404, "E_NOT_FOUND", "no such thing")
    assert error.error_code == ErrorCode.ERROR_CODE_NOT_FOUND
    assert error.details == {"id": "x-1"}


@pytest.mark.parametrize("op", OPERATIONS[:1], ids=ids)
def test_token_callable_is_asked_for_every_request(
    op: Op, on_sockets: tuple[ServiceApps, str, str]
) -> None:
    apps, public, internal = on_sockets
    issued: list[str] = []

    def fresh_token() -> str:
        issued.append(all_scopes())
        return issued[-1]

    with sync_client(op, public, internal, token=fresh_token) as client:
        getattr(client, op.python_name)(request_fixture(op))
        getattr(client, op.python_name)(request_fixture(op))

    assert len(issued) == 2
    assert len(apps.handler.calls) == 2


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
def test_client_without_the_rpcs_listener_says_which_one_it_needs(
    op: Op, on_sockets: tuple[ServiceApps, str, str]
) -> None:
    apps, public, internal = on_sockets
    client = sync_client(op, None, internal) if op.public else sync_client(op, public, None)

    with client, pytest.raises(QmtlError, match="public" if op.public else "internal"):
        getattr(client, op.python_name)(request_fixture(op))
    assert apps.handler.calls == []


@pytest.fixture
async def uvicorn_async_client(
    on_sockets: tuple[ServiceApps, str, str], op: Op
) -> AsyncIterator[Any]:
    _, public, internal = on_sockets
    cls = getattr(client_module(op.service), f"Async{op.service.name}Client")
    async with cls(public, internal, token=all_scopes(), encoding=Encoding.JSON) as client:
        yield client


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_async_client_over_uvicorn_in_json(op: Op, uvicorn_async_client: Any) -> None:
    answer = await getattr(uvicorn_async_client, op.python_name)(request_fixture(op))

    assert answer == served_response(op)
