"""A real grpc.aio server on 127.0.0.1:0 serving a generated adapter, and the rpcs to call.

The rpcs come from the generated ServiceSpecs (every rpc of every service, gRPC-only ones
included) and are cross-checked against tests/http/surface.py's descriptor-derived table, so
the access matrix over gRPC and over HTTP is one table. Requests and replies are the golden
fixtures the HTTP tests use.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import descriptor, message

from qmtl.runtime.context import Context
from qmtl.runtime.pipeline import Interceptor
from qmtl.runtime.spec import RpcSpec, ServiceSpec
from qmtl_codegen.httpmodel import python_module, snake_case
from tests.http.surface import OPERATIONS, VERIFIER, fixture_bytes
from tests.pb2_modules import generated_pb2_modules


@dataclass(frozen=True)
class GrpcRpc:
    """One rpc of a generated service, as the gRPC adapter serves it."""

    service: descriptor.ServiceDescriptor
    spec: RpcSpec[Any, Any]

    @property
    def id(self) -> str:
        return f"{self.service.name}.{self.spec.name}"

    def request(self) -> message.Message:
        return _fixture(self.spec.request)

    def response(self) -> message.Message:
        return _fixture(self.spec.response)


def _fixture(cls: type[message.Message]) -> message.Message:
    """The first "full" golden fixture of a message class."""
    msg = cls()
    msg.ParseFromString(fixture_bytes(cls.DESCRIPTOR.full_name))
    return msg


def _module(service: descriptor.ServiceDescriptor, suffix: str) -> ModuleType:
    stem = python_module(service.file.name).removesuffix("_pb2")
    return importlib.import_module(f"{stem}_{suffix}")


def handler_module(service: descriptor.ServiceDescriptor) -> ModuleType:
    return _module(service, "handler")


def grpc_module(service: descriptor.ServiceDescriptor) -> ModuleType:
    return _module(service, "grpc")


def stub_module(service: descriptor.ServiceDescriptor) -> ModuleType:
    return _module(service, "pb2_grpc")


def service_spec(service: descriptor.ServiceDescriptor) -> ServiceSpec:
    spec: ServiceSpec = getattr(handler_module(service), snake_case(service.name).upper())
    return spec


def _rpcs() -> list[GrpcRpc]:
    found: list[GrpcRpc] = []
    for module in generated_pb2_modules():
        for service in module.DESCRIPTOR.services_by_name.values():
            found += [GrpcRpc(service, spec) for spec in service_spec(service).rpcs]
    return sorted(found, key=lambda rpc: rpc.id)


RPCS = _rpcs()
AUTHENTICATED = [rpc for rpc in RPCS if not rpc.spec.access.allow_anonymous]
ANONYMOUS = [rpc for rpc in RPCS if rpc.spec.access.allow_anonymous]
SERVICES = sorted({rpc.service.full_name: rpc.service for rpc in RPCS}.values(), key=str)
# The HTTP matrix's table, by rpc: every HTTP-bound rpc must carry the same access over gRPC.
HTTP_OPERATIONS = {op.method.full_name: op for op in OPERATIONS}


def ids(rpc: GrpcRpc) -> str:
    return rpc.id


@dataclass
class Call:
    rpc: str
    request: message.Message
    ctx: Context


@dataclass
class Recorder:
    """What the fixture handler saw, and how it should answer."""

    calls: list[Call] = field(default_factory=list)
    # rpc method name -> what to raise instead of answering
    failures: dict[str, BaseException] = field(default_factory=dict)
    # rpc method name -> awaited before answering (e.g. a never-set event: a slow handler)
    waits: dict[str, Callable[[], Awaitable[object]]] = field(default_factory=dict)


def fixture_handler(
    service: descriptor.ServiceDescriptor, recorder: Recorder, *, skip: Sequence[str] = ()
) -> object:
    """A subclass of the service's generated Base answering every rpc but `skip` (method
    names) with its response fixture; the skipped ones keep the Base's E_UNIMPLEMENTED."""
    base: type = getattr(handler_module(service), f"{service.name}Base")
    methods: dict[str, Any] = {}
    for spec in service_spec(service).rpcs:
        if spec.method not in skip:
            methods[spec.method] = _answer(GrpcRpc(service, spec), recorder)
    return type(f"Fixture{service.name}Handler", (base,), methods)()


def _answer(rpc: GrpcRpc, recorder: Recorder) -> Callable[..., Awaitable[message.Message]]:
    name = rpc.spec.method

    async def answer(self: object, request: message.Message, ctx: Context) -> message.Message:
        recorder.calls.append(Call(name, request, ctx))
        if name in recorder.waits:
            await recorder.waits[name]()
        if name in recorder.failures:
            raise recorder.failures[name]
        return rpc.response()

    return answer


@dataclass
class Served:
    """A running server and a stub on a channel to it."""

    stub: Any
    channel: grpc.aio.Channel
    adapter: object
    port: int

    def method(self, rpc: GrpcRpc) -> Any:
        """The stub's multi-callable of `rpc`."""
        return getattr(self.stub, rpc.spec.name)


@asynccontextmanager
async def serve(
    service: descriptor.ServiceDescriptor,
    handler: object,
    *,
    interceptors: Sequence[Interceptor] = (),
) -> AsyncIterator[Served]:
    """Serves `handler` through the generated adapter on an ephemeral port, with a stub."""
    server = grpc.aio.server()
    add = getattr(grpc_module(service), f"add_{snake_case(service.name)}_to_server")
    adapter = add(server, handler, VERIFIER, interceptors=interceptors)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = getattr(stub_module(service), f"{service.name}Stub")(channel)
        yield Served(stub, channel, adapter, port)
    finally:
        await channel.close()
        await server.stop(None)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)
