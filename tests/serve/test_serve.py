"""serve(): three listeners, one loop, one handler; graceful stop; ports; typed failures."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import empty_pb2, wrappers_pb2

from qmtl.common.v1 import error_pb2
from qmtl.runtime import codec
from qmtl.runtime.serve import ServeConfig, ServeConfigError, Served, ServeError, serve
from tests.polling import eventually
from tests.serve.toy_service import BINDING, FREE_PORTS, VERIFIER, Counter, grpc_call

REPO = Path(__file__).resolve().parents[2]
PROTOBUF = {"accept": codec.PROTOBUF}


def value_of(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return wrappers_pb2.Int64Value.FromString(response.content).value


async def refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False  # accepted into the backlog as the listener closed: look again
    writer.close()
    return False


class Running:
    def __init__(self, served: Served, task: asyncio.Task[None]) -> None:
        self.served, self.task = served, task

    def url(self, listener: str, path: str) -> str:
        port = getattr(self.served, f"{listener}_port")
        return f"http://127.0.0.1:{port}{path}"


async def start(counter: Counter, config: ServeConfig = FREE_PORTS) -> Running:
    served = Served(counter, VERIFIER, BINDING, config=config)
    task = asyncio.create_task(served.run())
    await served.wait_started()
    return Running(served, task)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    run = await start(Counter())
    yield run
    run.served.stop()
    await run.task


async def test_three_listeners_call_one_handler_instance(running: Running) -> None:
    served = running.served
    ports = {served.public_port, served.internal_port, served.grpc_port}
    assert None not in ports
    assert 0 not in ports
    assert len(ports) == 3
    async with httpx.AsyncClient(headers=PROTOBUF) as client:
        assert value_of(await client.post(running.url("internal", "/v1/toy/bump"))) == 1
        async with grpc.aio.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
            reply = await grpc_call(channel, "Bump")(empty_pb2.Empty())
        assert reply.value == 2
        # The public listener reads the state the other two changed: one instance, one loop.
        assert value_of(await client.get(running.url("public", "/v1/toy/count"))) == 2


async def test_each_listener_serves_only_its_own_routes(running: Running) -> None:
    async with httpx.AsyncClient(headers=PROTOBUF) as client:
        assert (await client.post(running.url("public", "/v1/toy/bump"))).status_code == 404
        assert (await client.get(running.url("internal", "/v1/toy/count"))).status_code == 404
        for listener in ("public", "internal"):
            page = await client.get(running.url(listener, "/docs"))
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")


async def test_stop_lets_a_call_in_flight_finish_and_refuses_new_connections() -> None:
    counter = Counter()
    run = await start(counter)
    async with httpx.AsyncClient(headers=PROTOBUF) as client:
        call = asyncio.create_task(client.post(run.url("internal", "/v1/toy/slow")))
        await counter.entered.wait()
        run.served.stop()
        public_port = run.served.public_port
        assert public_port is not None
        await eventually(
            lambda: refuses_connections(public_port), what="the public listener to close"
        )
        assert not run.task.done()  # still waiting for the call in flight
        counter.release.set()
        assert value_of(await call) == 1
    await run.task  # run() returns, it does not raise


async def test_cancelling_run_stops_as_gracefully_as_stop() -> None:
    counter = Counter()
    run = await start(counter)
    counter.hold = run.served.wait_stopping  # answers once the stop has begun
    async with httpx.AsyncClient(headers=PROTOBUF) as client:
        call = asyncio.create_task(client.post(run.url("internal", "/v1/toy/slow")))
        await counter.entered.wait()
        run.task.cancel()
        assert value_of(await call) == 1
    with pytest.raises(asyncio.CancelledError):
        await run.task


def _embedders_handler(signum: int, frame: object) -> None:
    raise AssertionError("serve() should have had SIGTERM while it ran")


@pytest.fixture
def embedders_sigterm_handler() -> Iterator[None]:
    original = signal.signal(signal.SIGTERM, _embedders_handler)
    yield
    signal.signal(signal.SIGTERM, original)


@pytest.mark.usefixtures("embedders_sigterm_handler")
async def test_sigterm_stops_gracefully_with_a_grpc_call_in_flight() -> None:
    counter = Counter()
    run = await start(counter)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{run.served.grpc_port}") as channel:
        call = asyncio.ensure_future(grpc_call(channel, "Slow")(empty_pb2.Empty()))
        await counter.entered.wait()
        os.kill(os.getpid(), signal.SIGTERM)
        await run.served.wait_stopping()
        codes: list[grpc.StatusCode] = []

        async def refused() -> bool:
            try:
                # Answered while the stop is asked for but the server is not yet stopping.
                await grpc_call(channel, "Bump")(empty_pb2.Empty())
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
            # A call arriving as the server begins to stop may be CANCELLED; then refused.
            return codes[-1:] == [grpc.StatusCode.UNAVAILABLE]

        await eventually(refused, what="the gRPC server to refuse new calls")
        assert set(codes) <= {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE}
        counter.release.set()
        # The call in flight still completes, and is the last one the handler served.
        assert (await call).value == counter.count
    await run.task
    # What the process had before serve() is back once it returns.
    assert signal.getsignal(signal.SIGTERM) is _embedders_handler


async def test_the_grace_period_bounds_a_call_that_never_ends() -> None:
    counter = Counter()
    never = asyncio.Event()
    counter.hold = never.wait
    run = await start(
        counter, ServeConfig(public_port=0, internal_port=0, grpc_port=0, grace_seconds=0.5)
    )
    async with httpx.AsyncClient(headers=PROTOBUF) as client:
        call = asyncio.create_task(client.post(run.url("internal", "/v1/toy/slow")))
        await counter.entered.wait()
        began = time.monotonic()
        run.served.stop()
        await run.task
        elapsed = time.monotonic() - began
        cut_off = await call
    # uvicorn rounds its timeout up to whole seconds, and polls every 0.1 s.
    assert elapsed < 3.0
    assert cut_off.status_code == 503
    detail = error_pb2.ErrorDetail.FromString(cut_off.content)
    assert (detail.code, detail.retryable) == ("E_UNAVAILABLE", True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_taken_port_is_a_serve_error_naming_the_listener() -> None:
    public = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = ServeConfig(public_port=public, internal_port=port, grpc_port=0)
        served = Served(Counter(), VERIFIER, BINDING, config=config)
        task = asyncio.create_task(served.run())
        with pytest.raises(ServeError, match="before every listener started"):
            await served.wait_started()
        with pytest.raises(ServeError, match=f"internal listener cannot bind 127.0.0.1:{port}"):
            await task
    # The public socket bound before the failure is closed again, not left listening.
    assert await refuses_connections(public)


async def test_a_taken_grpc_port_is_a_serve_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = ServeConfig(public_port=0, internal_port=0, grpc_port=port)
        with pytest.raises(ServeError, match="grpc listener cannot bind"):
            await Served(Counter(), VERIFIER, BINDING, config=config).run()


async def test_a_listener_set_to_none_is_not_served() -> None:
    run = await start(Counter(), ServeConfig(public_port=0, internal_port=None, grpc_port=None))
    assert (run.served.internal_port, run.served.grpc_port) == (None, None)
    async with httpx.AsyncClient(headers=PROTOBUF) as client:
        assert value_of(await client.get(run.url("public", "/v1/toy/count"))) == 0
    run.served.stop()
    await run.task


async def test_ports_are_unknown_before_start_and_a_served_runs_once() -> None:
    served = Served(Counter(), VERIFIER, BINDING, config=FREE_PORTS)
    with pytest.raises(ServeError, match="once serving has started"):
        _ = served.public_port
    task = asyncio.create_task(served.run())
    await served.wait_started()
    with pytest.raises(ServeError, match="runs once"):
        await served.run()
    served.stop()
    await task


async def test_serve_reports_the_started_server_to_its_callback() -> None:
    seen: list[Served] = []

    def started(served: Served) -> None:
        seen.append(served)
        served.stop()

    await serve(Counter(), VERIFIER, BINDING, config=FREE_PORTS, started=started)
    assert len(seen) == 1
    assert seen[0].grpc_port


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"public_port": 65536}, "public_port must be a TCP port"),
        ({"internal_port": -1}, "internal_port must be a TCP port"),
        ({"grpc_port": True}, "grpc_port must be a TCP port"),
        ({"grace_seconds": -1}, "must not be negative"),
        ({"grace_seconds": float("nan")}, "finite number"),
        ({"grace_seconds": float("inf")}, "finite number"),
    ],
)
def test_unusable_options_are_refused_when_configured(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ServeConfigError, match=message):
        ServeConfig(**options)


async def test_sigterm_to_a_serving_process_finishes_the_call_and_exits_0() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.serve.toy_service",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ports = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        async with httpx.AsyncClient(headers=PROTOBUF) as client:
            url = f"http://127.0.0.1:{ports['internal']}/v1/toy/slow"
            call = asyncio.create_task(client.post(url))
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line == b"entered\n"
            process.send_signal(signal.SIGTERM)
            # The toy handler answers once the stop is asked for: the call still completes.
            assert value_of(await call) == 1
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


HTTP_ONLY = """
import asyncio, sys
sys.modules["grpc"] = None  # any `import grpc` now fails, as without the grpc extra
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from qmtl.runtime.auth import HmacTokenVerifier
from qmtl.runtime.serve import ServeConfig, Served, ServiceBinding

def routes(handler, verifier, *, interceptors=()):
    async def ok(request):
        return PlainTextResponse("ok")
    return [Route("/ok", ok, methods=["GET"])]

async def main():
    binding = ServiceBinding(name="http-only", public_routes=routes)
    config = ServeConfig(public_port=0, internal_port=None, grpc_port=None)
    served = Served(object(), HmacTokenVerifier({"k": b"k" * 32}), binding, config=config)
    task = asyncio.create_task(served.run())
    await served.wait_started()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.public_port)
    writer.write(b"GET /ok HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    print((await reader.read()).split(b"\\r\\n")[0].decode())
    served.stop()
    await task
    print("grpc" in sys.modules and sys.modules["grpc"] is not None)

asyncio.run(main())
"""


async def test_http_only_serving_needs_no_grpcio() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HTTP_ONLY, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    assert out.decode().splitlines() == ["HTTP/1.1 200 OK", "False"]
