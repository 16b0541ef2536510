"""A hand-built service for serve(): one counter behind public HTTP, internal HTTP and gRPC.

It depends only on serve()'s ServiceBinding contract, not on any generated module, so the
tests of the serving machinery (ports, shared handler, shutdown) hold whatever the generators
emit. `python -m tests.serve.toy_service` serves it on free ports for the subprocess test:
it prints `{"public": p, "internal": i, "grpc": g}` once listening, and `entered` when a
/slow call reaches the handler; that call answers once a stop has been asked for.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf import empty_pb2, wrappers_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from qmtl.runtime import codec
from qmtl.runtime.auth import HmacTokenVerifier, TokenVerifier
from qmtl.runtime.pipeline import Interceptor
from qmtl.runtime.serve import ServeConfig, Served, ServiceBinding

VERIFIER = HmacTokenVerifier({"k1": b"toy-secret-toy-secret-toy-secret"})
GRPC_SERVICE = "qmtl.test.Toy"


class Counter:
    """The one handler instance every listener calls; `slow` holds its call until released."""

    def __init__(self) -> None:
        self.count = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.on_enter: Callable[[], None] = lambda: None
        self.hold: Callable[[], Awaitable[Any]] = self.release.wait

    def bump(self) -> int:
        self.count += 1
        return self.count

    async def slow(self) -> int:
        self.entered.set()
        self.on_enter()
        await self.hold()
        return self.bump()


def _reply(request: Request, value: int) -> Response:
    encoding = codec.negotiate(request.headers.get("accept"))
    body = codec.encode(wrappers_pb2.Int64Value(value=value), encoding)
    return Response(body, media_type=encoding.media_type)


def public_routes(
    handler: Counter, verifier: TokenVerifier, *, interceptors: Sequence[Interceptor] = ()
) -> list[BaseRoute]:
    async def count(request: Request) -> Response:
        return _reply(request, handler.count)

    return [Route("/v1/toy/count", count, methods=["GET"])]


def internal_routes(
    handler: Counter, verifier: TokenVerifier, *, interceptors: Sequence[Interceptor] = ()
) -> list[BaseRoute]:
    async def bump(request: Request) -> Response:
        return _reply(request, handler.bump())

    async def slow(request: Request) -> Response:
        return _reply(request, await handler.slow())

    return [
        Route("/v1/toy/bump", bump, methods=["POST"]),
        Route("/v1/toy/slow", slow, methods=["POST"]),
    ]


def add_toy_to_server(
    server: grpc.aio.Server,
    handler: Counter,
    verifier: TokenVerifier,
    *,
    interceptors: Sequence[Interceptor] = (),
) -> None:
    async def bump(request: empty_pb2.Empty, context: Any) -> wrappers_pb2.Int64Value:
        return wrappers_pb2.Int64Value(value=handler.bump())

    async def slow(request: empty_pb2.Empty, context: Any) -> wrappers_pb2.Int64Value:
        return wrappers_pb2.Int64Value(value=await handler.slow())

    def method(fn: Any) -> grpc.RpcMethodHandler[empty_pb2.Empty, wrappers_pb2.Int64Value]:
        return grpc.unary_unary_rpc_method_handler(
            fn,
            request_deserializer=empty_pb2.Empty.FromString,
            response_serializer=wrappers_pb2.Int64Value.SerializeToString,
        )

    generic = grpc.method_handlers_generic_handler(
        GRPC_SERVICE, {"Bump": method(bump), "Slow": method(slow)}
    )
    server.add_generic_rpc_handlers((generic,))


OPENAPI = json.dumps(
    {"openapi": "3.1.0", "info": {"title": "toy", "version": "1"}, "paths": {}}
).encode()

BINDING = ServiceBinding(
    name="qmtl.test.Toy",
    public_routes=public_routes,
    internal_routes=internal_routes,
    add_to_grpc_server=add_toy_to_server,
    public_openapi=OPENAPI,
    internal_openapi=OPENAPI,
)

FREE_PORTS = ServeConfig(public_port=0, internal_port=0, grpc_port=0, grace_seconds=5.0)


def grpc_call(channel: grpc.aio.Channel, name: str) -> Any:
    return channel.unary_unary(
        f"/{GRPC_SERVICE}/{name}",
        request_serializer=empty_pb2.Empty.SerializeToString,
        response_deserializer=wrappers_pb2.Int64Value.FromString,
    )


async def _main() -> None:
    counter = Counter()
    served = Served(counter, VERIFIER, BINDING, config=FREE_PORTS)

    def report(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    counter.on_enter = lambda: report("entered")
    counter.hold = served.wait_stopping
    runner = asyncio.create_task(served.run())
    await served.wait_started()
    ports = {"public": served.public_port, "internal": served.internal_port}
    report(json.dumps({**ports, "grpc": served.grpc_port}))
    await runner


if __name__ == "__main__":
    asyncio.run(_main())
