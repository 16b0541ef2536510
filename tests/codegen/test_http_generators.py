"""The HTTP generators turn any rpc into a route and a client method, with no per-rpc edit.

The end-to-end test compiles a schema the repository does not have (a new service with a GET
rpc and new messages), generates its messages, router and client into a temporary package,
and calls the new route through the new client.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc_tools  # type: ignore[import-untyped]
import httpx
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc

from qmtl.runtime.auth import HmacTokenVerifier, issue_token
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.http.server import create_public_app
from qmtl_codegen import handlers, http_client, http_routes, openapi, reference
from qmtl_codegen.httpmodel import snake_case
from qmtl_codegen.plugin import GeneratorError

ROOT = Path(__file__).resolve().parents[2]
INCLUDES = [
    ROOT / "schemas",
    ROOT / ".tools" / "proto-deps",
    Path(grpc_tools.__file__).parent / "_proto",
]

PROBE = """
syntax = "proto3";

package qmtlprobe.v1;

import "google/api/annotations.proto";
import "google/api/field_behavior.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "qmtl/api/v1/access.proto";
import "qmtl/common/v1/match_mode.proto";
import "qmtl/common/v1/paging.proto";

// A service the repository does not have.
service ProbeService {
  // Finds widgets.
  rpc FindWidgets(FindWidgetsRequest) returns (FindWidgetsResponse) {
    option (google.api.http) = {get: "/v1/probe/shelves/{shelf_id}/widgets"};
    option (qmtl.api.v1.access) = {
      access: ACCESS_PUBLIC_READ
      required_scopes: "widgets:read"
    };
  }
  // Stores a widget.
  rpc PutWidget(PutWidgetRequest) returns (FindWidgetsResponse) {
    option (google.api.http) = {
      post: "/v1/probe/internal/shelves/{shelf_id}/widgets"
      body: "*"
    };
    option (qmtl.api.v1.access) = {
      access: ACCESS_INTERNAL
      required_scopes: "widgets:write"
    };
  }
}

message FindWidgetsRequest {
  string shelf_id = 1;
  repeated string colors = 2;
  int64 min_weight = 3 [(google.api.field_behavior) = REQUIRED];
  qmtl.common.v1.MatchMode match_mode = 4;
  bool in_stock = 5;
  google.protobuf.Timestamp since = 6;
  google.protobuf.Duration max_age = 7;
  google.protobuf.UInt32Value limit = 8;
  qmtl.common.v1.PageRequest page = 9;
  bytes cursor = 10;
  double min_score = 11;
}

message PutWidgetRequest {
  string shelf_id = 1;
  string name = 2 [(google.api.field_behavior) = REQUIRED];
}

message FindWidgetsResponse {
  repeated string names = 1;
}
"""


def compile_request(tmp_path: Path, source: str, python_out: Path | None = None) -> Any:
    proto = tmp_path / "protos" / "qmtlprobe" / "v1" / "probe_service.proto"
    proto.parent.mkdir(parents=True, exist_ok=True)
    proto.write_text(source)
    descriptors = tmp_path / "probe.binpb"
    includes = [f"-I{tmp_path / 'protos'}", *(f"-I{path}" for path in INCLUDES)]
    outputs = []
    if python_out is not None:
        python_out.mkdir(parents=True, exist_ok=True)
        outputs.append(f"--python_out={python_out}")
    status = protoc.main(
        [
            "protoc",
            *includes,
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={descriptors}",
            *outputs,
            "qmtlprobe/v1/probe_service.proto",
        ]
    )
    assert status == 0, "protoc could not compile the probe schema"
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptors.read_bytes()).file
    return plugin_pb2.CodeGeneratorRequest(
        file_to_generate=["qmtlprobe/v1/probe_service.proto"], proto_file=files
    )


def generate_into(request: Any, out: Path) -> list[str]:
    names = []
    for generator in (handlers.generate, http_routes.generate, http_client.generate):
        for output in generator(request):
            assert isinstance(output.content, str)
            target = out / output.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(output.content)
            names.append(output.name)
    return names


def test_every_service_file_gets_a_router_and_a_client(
    codegen_request: plugin_pb2.CodeGeneratorRequest,
) -> None:
    routers = {o.name: o.content for o in http_routes.generate(codegen_request)}
    clients = {o.name: o.content for o in http_client.generate(codegen_request)}

    assert sorted(routers) == [
        "qmtl/dagmanager/v1/dag_manager_service_http.py",
        "qmtl/gateway/v1/gateway_service_http.py",
    ]
    assert sorted(clients) == [
        "qmtl/dagmanager/v1/dag_manager_service_client.py",
        "qmtl/gateway/v1/gateway_service_client.py",
    ]
    for name, content in {**routers, **clients}.items():
        assert isinstance(content, str)
        first = content.splitlines()[0]
        assert first.startswith("# Code generated by qmtl-codegen "), name
        assert first.endswith(".proto. DO NOT EDIT."), name
        compile(content, name, "exec")


async def test_router_and_client_of_a_new_rpc_work_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "python"
    request = compile_request(tmp_path, PROBE, python_out=out)
    generated = generate_into(request, out)
    monkeypatch.syspath_prepend(str(out))
    assert generated == [
        "qmtlprobe/v1/probe_service_handler.py",
        "qmtlprobe/v1/probe_service_http.py",
        "qmtlprobe/v1/probe_service_client.py",
    ]
    messages = importlib.import_module("qmtlprobe.v1.probe_service_pb2")
    router = importlib.import_module("qmtlprobe.v1.probe_service_http")
    client_module = importlib.import_module("qmtlprobe.v1.probe_service_client")
    received: list[Any] = []

    class Handler:
        async def find_widgets(self, request: Any, principal: Any) -> Any:
            received.append(request)
            return messages.FindWidgetsResponse(names=["w1", "w2"])

        async def put_widget(self, request: Any, principal: Any) -> Any:
            received.append(request)
            return messages.FindWidgetsResponse(names=[request.name])

    verifier = HmacTokenVerifier(b"probe")
    app = create_public_app(router.probe_service_public_routes(Handler(), verifier), openapi=None)
    token = issue_token(b"probe", "probe", ["widgets:read"])
    sent = messages.FindWidgetsRequest(
        shelf_id="shelf:7",
        colors=["red", "blue"],
        min_weight=2**60,
        match_mode=2,
        in_stock=True,
        cursor=b"\x00\xffcursor",
        min_score=0.25,
    )
    sent.since.FromJsonString("2026-01-02T03:04:05.5Z")
    sent.max_age.FromJsonString("1.5s")
    sent.limit.value = 7
    sent.page.page_size = 20
    sent.page.page_token = "next page"

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
        client = client_module.AsyncProbeServiceClient(http, token=token)
        answer = await client.find_widgets(sent)
        with pytest.raises(QmtlError) as missing:
            await client.find_widgets(messages.FindWidgetsRequest(shelf_id="s"))

    assert list(answer.names) == ["w1", "w2"]
    assert received == [sent]
    assert (missing.value.status, missing.value.wire_code) == (422, "E_VALIDATION")
    assert missing.value.details == {"field": "minWeight"}


def test_generated_router_and_client_pass_mypy_strict() -> None:
    modules = sorted(
        str(path)
        for path in (ROOT / "generated" / "python" / "qmtl").rglob("*_service_*.py")
        if path.name.endswith(("_http.py", "_client.py"))
    )
    assert len(modules) >= 4, "run `make generate`"

    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('post: "/v1/probe/shelves/{shelf_id}/widgets" body: "*"', "GET only"),
        ('get: "/v1/probe/{shelf_id=shelves/*}/widgets"', "not supported"),
        ('get: "/v1/probe/shelves/{shelf_id}/widgets" body: "*"', "cannot carry a body"),
        ('get: "/v1/probe/shelves/{page}/widgets"', "must be a scalar"),
        ('get: "/v1/probe/shelves/{nope}/widgets"', "has no field nope"),
    ],
)
def test_rules_the_routers_cannot_serve_are_generator_errors(
    tmp_path: Path, rule: str, message: str
) -> None:
    source = PROBE.replace('get: "/v1/probe/shelves/{shelf_id}/widgets"', rule, 1)
    request = compile_request(tmp_path, source)

    with pytest.raises(GeneratorError, match=message):
        list(http_routes.generate(request))


@pytest.mark.parametrize(
    "generate", [http_routes.generate, http_client.generate, openapi.generate, reference.generate]
)
def test_a_custom_verb_after_a_path_variable_is_a_generator_error(
    tmp_path: Path, generate: Callable[[Any], Iterable[Any]]
) -> None:
    # Next to a plain `{shelf_id}` route, `/shelves/s-1:peek` would be ambiguous (ids hold `:`).
    template = "/v1/probe/shelves/{shelf_id}:peek"
    source = PROBE.replace("/v1/probe/shelves/{shelf_id}/widgets", template, 1)
    # The OpenAPI generator needs the error body and catalogue in the schemas before it reads
    # any rule.
    source = source.replace(
        'import "qmtl/common/v1/paging.proto";',
        'import "qmtl/common/v1/paging.proto";\nimport "qmtl/common/v1/error.proto";\n'
        'import "qmtl/common/v1/error_code.proto";',
    )
    request = compile_request(tmp_path, source)

    with pytest.raises(GeneratorError) as raised:
        list(generate(request))

    text = str(raised.value)
    assert "qmtlprobe.v1.ProbeService.FindWidgets" in text
    assert repr(template) in text
    assert "custom verb ':peek' after a path variable" in text


def test_rpc_names_become_snake_case_methods() -> None:
    assert snake_case("GetQueuesByTag") == "get_queues_by_tag"
    assert snake_case("TriggerGc") == "trigger_gc"
    assert snake_case("GetHTTPRule") == "get_http_rule"
    assert snake_case("Diff") == "diff"
