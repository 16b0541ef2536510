"""Message names never collide with the names generated modules bind themselves.

A schema may call its messages `Operation`, `Request`, `Response`, `Route`, `Handler`,
`Context` or `Access`: names the generated modules also use for runtime or framework classes.
Such a message is imported qualified (`_qmtl_pb_<n>.Operation`), so the module keeps the
runtime's class and the rpc still sends and answers the schema's messages.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc  # type: ignore[import-untyped]

from qmtl_codegen import grpc_adapter, handlers, http_client, http_routes, httpmodel
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import GeneratorError
from tests.codegen.test_http_generators import INCLUDES

COLLIDING = (
    "Operation",
    "Request",
    "Response",
    "Route",
    "Handler",
    "Context",
    "Access",
    # Names the generated modules derive from the service.
    "ProbeServiceHandler",
    "ProbeServiceClient",
)

SOURCE = """
syntax = "proto3";

package qmtlclash.v1;

import "google/api/annotations.proto";
import "qmtl/api/v1/access.proto";

service ProbeService {
  rpc Route(Request) returns (Response) {
    option (google.api.http) = {get: "/v1/probe/routes/{id}"};
    option (qmtl.api.v1.access) = {access: ACCESS_PUBLIC_READ};
  }
  rpc Operate(Operation) returns (Context) {
    option (google.api.http) = {post: "/v1/probe/internal/operations" body: "*"};
    option (qmtl.api.v1.access) = {access: ACCESS_INTERNAL};
  }
  rpc Handle(Handler) returns (Access) {
    option (qmtl.api.v1.access) = {access: ACCESS_INTERNAL};
  }
  rpc Serve(ProbeServiceHandler) returns (ProbeServiceClient) {
    option (google.api.http) = {get: "/v1/probe/internal/serve"};
    option (qmtl.api.v1.access) = {access: ACCESS_INTERNAL};
  }
}

message Request { string id = 1; }
message Response { string id = 1; }
message Operation { string name = 1; }
message Context { string name = 1; }
message Handler { string name = 1; }
message Access { string name = 1; }
message Route { string name = 1; }
message ProbeServiceHandler { string name = 1; }
message ProbeServiceClient { string name = 1; }
"""

# Every Python plugin of buf.gen.yaml that writes modules importing the messages.
GENERATORS: tuple[Callable[[plugin_pb2.CodeGeneratorRequest], Iterable[Any]], ...] = (
    handlers.generate,
    http_routes.generate,
    http_client.generate,
    grpc_adapter.generate,
)


def _module_bindings(tree: ast.Module) -> Iterator[str]:
    """Every name a module binds at its top level (imports, definitions, assignments)."""
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                yield alias.asname or alias.name.split(".")[0]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name
        elif isinstance(node, ast.Assign):
            yield from (t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            yield node.target.id


PROTO = "qmtlclash/v1/clash_service.proto"


def compile_clash(tmp_path: Path, source: str, python_out: Path) -> plugin_pb2.CodeGeneratorRequest:
    """The plugin request for SOURCE, plus its pb2 and pb2_grpc modules in `python_out`.

    A package of its own: protobuf's default pool keeps every file once per process, and
    other tests compile a different `qmtlprobe/v1/probe_service.proto`.
    """
    proto = tmp_path / "protos" / PROTO
    proto.parent.mkdir(parents=True, exist_ok=True)
    proto.write_text(source)
    python_out.mkdir(parents=True, exist_ok=True)
    descriptors = tmp_path / "clash.binpb"
    status = protoc.main(
        [
            "protoc",
            f"-I{tmp_path / 'protos'}",
            *(f"-I{path}" for path in INCLUDES),
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={descriptors}",
            f"--python_out={python_out}",
            f"--grpc_python_out={python_out}",
            PROTO,
        ]
    )
    assert status == 0, "protoc could not compile the clash schema"
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptors.read_bytes()).file
    return plugin_pb2.CodeGeneratorRequest(file_to_generate=[PROTO], proto_file=files)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp_path = tmp_path_factory.mktemp("clash")
    out = tmp_path / "python"
    request = compile_clash(tmp_path, SOURCE, out)
    sources: dict[str, str] = {}
    for generate in GENERATORS:
        for output in generate(request):
            target = out / output.name
            target.write_text(output.content)
            sources[output.name] = output.content
    sys.path.insert(0, str(out))
    yield sources
    sys.path.remove(str(out))


def test_no_generated_module_binds_a_name_twice(generated: dict[str, str]) -> None:
    assert len(generated) == len(GENERATORS)
    for name, source in generated.items():
        bound = Counter(_module_bindings(ast.parse(source)))
        assert [n for n, count in bound.items() if count > 1] == [], name


def test_colliding_messages_are_imported_qualified(generated: dict[str, str]) -> None:
    client = generated["qmtlclash/v1/clash_service_client.py"]
    assert "import clash_service_pb2 as _qmtl_pb_0" in client
    assert "_qmtl_pb_0.Response" in client


def test_modules_import_and_keep_the_runtime_classes(generated: dict[str, str]) -> None:
    messages = importlib.import_module("qmtlclash.v1.clash_service_pb2")
    for name in generated:
        module = importlib.import_module(name.removesuffix(".py").replace("/", "."))
        for message in COLLIDING:
            bound = getattr(module, message, None)
            # Bound by the template (a runtime or framework class) or by the message import,
            # but then as the schema's class: never one name for two things.
            if bound is not None and bound is not getattr(messages, message):
                assert not hasattr(bound, "DESCRIPTOR"), f"{name}: {message} is another message"
    client = importlib.import_module("qmtlclash.v1.clash_service_client")
    operations = [
        value
        for value in vars(client).values()
        if type(value).__name__ == "Operation" and type(value).__module__.startswith("qmtl.runtime")
    ]
    # The client binds the runtime's Operation and sends the schema's messages.
    responses = {messages.Response, messages.Context, messages.ProbeServiceClient}
    assert {op.response for op in operations} == responses


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("message Route {", "message _qmtl_gen {"),
        ("string name = 1; }\nmessage Route", "string _qmtl_x = 1; }\nmessage Route"),
        ("rpc Handle(", "rpc _qmtl_Handle("),
    ],
)
def test_names_with_the_reserved_prefix_are_refused(tmp_path: Path, old: str, new: str) -> None:
    assert SOURCE.count(old) == 1
    request = compile_clash(tmp_path, SOURCE.replace(old, new), tmp_path / "python")
    with pytest.raises(GeneratorError, match="names starting with '_qmtl_' are reserved"):
        httpmodel.file_models(Schema.from_request(request))


def _py(name: str, module: str = "a.v1.a_pb2") -> httpmodel.PyType:
    return httpmodel.PyType(module, name, f"a.v1.{name}")


def test_imports_for_qualifies_a_taken_name() -> None:
    widget = httpmodel.PyType("b.v1.b_pb2", "Widget", "b.v1.Widget")
    imports = httpmodel.imports_for([_py("Operation"), _py("Gadget"), widget], taken={"Operation"})
    # The module is imported once, aliased: its other classes are qualified too.
    assert imports.lines == (
        "from a.v1 import a_pb2 as _qmtl_pb_0",
        "from b.v1.b_pb2 import Widget",
    )
    assert imports.ref(_py("Operation")) == "_qmtl_pb_0.Operation"
    assert imports.ref(_py("Gadget")) == "_qmtl_pb_0.Gadget"
    assert imports.ref(widget) == "Widget"


def test_imports_for_qualifies_a_name_two_modules_export() -> None:
    first, second = _py("Widget"), httpmodel.PyType("b.v1.b_pb2", "Widget", "b.v1.Widget")
    imports = httpmodel.imports_for([first, second], taken=())
    assert imports.lines == (
        "from a.v1 import a_pb2 as _qmtl_pb_0",
        "from b.v1 import b_pb2 as _qmtl_pb_1",
    )
    assert (imports.ref(first), imports.ref(second)) == ("_qmtl_pb_0.Widget", "_qmtl_pb_1.Widget")
