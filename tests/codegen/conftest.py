"""The schemas as protoc hands them to a plugin, built in-process once per test session.

grpc_tools' protoc writes a descriptor set with imports and comments (source info), already in
dependency order, which is what a CodeGeneratorRequest's proto_file must be. The google/api
protos come from .tools/proto-deps and the well-known types from grpc_tools' bundled copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import grpc_tools
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc

from qmtl_codegen.descriptors import Schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
PROTO_DEPS = ROOT / ".tools" / "proto-deps"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"

MakeSchema = Callable[[Iterable[descriptor_pb2.FileDescriptorProto]], Schema]


@pytest.fixture(scope="session")
def codegen_request(tmp_path_factory: pytest.TempPathFactory) -> plugin_pb2.CodeGeneratorRequest:
    """The request buf sends a `strategy: all` plugin: every schema file is a target."""
    assert (PROTO_DEPS / "google" / "api" / "http.proto").is_file(), "run `make setup`"
    targets = sorted(path.relative_to(SCHEMAS).as_posix() for path in SCHEMAS.rglob("*.proto"))
    out = tmp_path_factory.mktemp("descriptors") / "schemas.binpb"
    status = protoc.main(
        [
            "protoc",
            f"-I{SCHEMAS}",
            f"-I{PROTO_DEPS}",
            f"-I{WELL_KNOWN}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *targets,
        ]
    )
    assert status == 0, "protoc could not compile schemas/ (see its errors above)"
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return plugin_pb2.CodeGeneratorRequest(file_to_generate=targets, proto_file=files)


@pytest.fixture(scope="session")
def schema(codegen_request: plugin_pb2.CodeGeneratorRequest) -> Schema:
    return Schema.from_request(codegen_request)


@pytest.fixture
def schema_with(codegen_request: plugin_pb2.CodeGeneratorRequest) -> MakeSchema:
    """A Schema of the real files plus extra ones, which become the only targets."""

    def make(extra: Iterable[descriptor_pb2.FileDescriptorProto]) -> Schema:
        files = list(extra)
        request = plugin_pb2.CodeGeneratorRequest()
        request.CopyFrom(codegen_request)
        request.proto_file.extend(files)
        request.ClearField("file_to_generate")
        request.file_to_generate.extend(file.name for file in files)
        return Schema.from_request(request)

    return make
