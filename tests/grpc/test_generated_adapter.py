"""The gRPC adapter generator on a small inline schema: gRPC-only rpcs, collisions, streaming.

The schema is compiled with protoc (messages and gRPC stubs) into a temporary directory, the
handler and adapter plugins run on it in-process, and the result is imported and served.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc  # type: ignore[import-untyped]

from qmtl.runtime.grpc import error_from_rpc_error
from qmtl_codegen import grpc_adapter, handlers
from qmtl_codegen.plugin import GeneratorError
from tests.codegen.test_http_generators import INCLUDES
from tests.http.surface import VERIFIER, token

PACKAGE = "qmtl.h3grpctest.v1"
FILE = "qmtl/h3grpctest/v1/echo_service.proto"

# `EchoServiceGrpcAdapter` is also a message: the generated module must qualify it.
ECHO = """
syntax = "proto3";
package qmtl.h3grpctest.v1;
import "google/api/annotations.proto";
import "qmtl/api/v1/access.proto";
message PingRequest { string text = 1; }
message PingResponse { string text = 1; }
message EchoServiceGrpcAdapter { string text = 1; }
service EchoService {
  rpc Ping(PingRequest) returns (PingResponse) {
    option (google.api.http) = {get: "/v1/echo/ping"};
    option (qmtl.api.v1.access) = {access: ACCESS_PUBLIC_READ required_scopes: "echo:read"};
  }
  // gRPC only: no google.api.http rule.
  rpc Shout(PingRequest) returns (EchoServiceGrpcAdapter) {
    option (qmtl.api.v1.access) = {access: ACCESS_INTERNAL required_scopes: "echo:write"};
  }
}
"""
STREAMING = """
  rpc Watch(PingRequest) returns (stream PingResponse) {
    option (qmtl.api.v1.access) = {access: ACCESS_INTERNAL required_scopes: "echo:write"};
  }
}
"""


def _compile(tmp: Path, source: str) -> plugin_pb2.CodeGeneratorRequest:
    proto = tmp / "proto" / FILE
    proto.parent.mkdir(parents=True)
    proto.write_text(source)
    descriptors = tmp / "set.binpb"
    includes = [f"-I{tmp / 'proto'}", *(f"-I{path}" for path in INCLUDES)]
    status = protoc.main(
        [
            "protoc",
            *includes,
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={descriptors}",
            f"--python_out={tmp / 'out'}",
            f"--grpc_python_out={tmp / 'out'}",
            FILE,
        ]
    )
    assert status == 0, "protoc could not compile the inline schema"
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptors.read_bytes()).file
    return plugin_pb2.CodeGeneratorRequest(file_to_generate=[FILE], proto_file=files)


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[dict[str, ModuleType]]:
    (tmp_path / "out").mkdir()
    request = _compile(tmp_path, ECHO)
    for plugin in (handlers, grpc_adapter):
        for output in plugin.generate(request):
            target = tmp_path / "out" / output.name
            assert isinstance(output.content, str)
            target.write_text(output.content)
    sys.path.insert(0, str(tmp_path / "out"))
    try:
        names = ("echo_service_pb2", "echo_service_handler", "echo_service_grpc")
        yield {name: importlib.import_module(f"{PACKAGE}.{name}") for name in names}
    finally:
        sys.path.remove(str(tmp_path / "out"))
        for name in [n for n in sys.modules if n.startswith(PACKAGE)]:
            del sys.modules[name]


def test_the_adapter_covers_every_rpc_and_qualifies_a_colliding_message(
    generated: dict[str, ModuleType],
) -> None:
    adapter_module = generated["echo_service_grpc"]
    pb2 = generated["echo_service_pb2"]

    # The module's own class is the adapter; the message of that name is reached qualified.
    adapter = adapter_module.EchoServiceGrpcAdapter
    assert adapter is not pb2.EchoServiceGrpcAdapter
    assert {"Ping", "Shout"} <= set(vars(adapter))
    source = Path(adapter_module.__file__ or "").read_text()
    assert "_qmtl_gen.check_version(1, __name__, " in source


async def test_a_grpc_only_rpc_is_served_with_its_access_rule(
    generated: dict[str, ModuleType],
) -> None:
    pb2 = generated["echo_service_pb2"]
    base: Any = generated["echo_service_handler"].EchoServiceBase

    class Echo(base):  # type: ignore[misc]
        async def shout(self, request: Any, ctx: Any) -> Any:
            return pb2.EchoServiceGrpcAdapter(text=request.text.upper())

    server = grpc.aio.server()
    generated["echo_service_grpc"].add_echo_service_to_server(server, Echo(), VERIFIER)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub_module = importlib.import_module(f"{PACKAGE}.echo_service_pb2_grpc")
            stub = stub_module.EchoServiceStub(channel)
            allowed = (("authorization", f"Bearer {token('echo:write')}"),)
            reply = await stub.Shout(pb2.PingRequest(text="hi"), metadata=allowed, timeout=10)
            reading = (("authorization", f"Bearer {token('echo:read')}"),)
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await stub.Shout(pb2.PingRequest(text="hi"), metadata=reading, timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as unimplemented:
                await stub.Ping(pb2.PingRequest(), metadata=reading, timeout=10)
    finally:
        await server.stop(None)

    assert reply.text == "HI"
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error_from_rpc_error(unimplemented.value).wire_code == "E_UNIMPLEMENTED"


def test_a_streaming_rpc_is_refused_at_generation(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    request = _compile(tmp_path, ECHO.rstrip().removesuffix("}") + STREAMING)

    with pytest.raises(GeneratorError, match=r"EchoService\.Watch: streaming rpcs"):
        list(grpc_adapter.generate(request))
