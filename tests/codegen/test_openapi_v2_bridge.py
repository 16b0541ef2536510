"""grpc-gateway's protoc-gen-openapiv2 runs on our schemas through the go_package bridge."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

from google.protobuf.compiler import plugin_pb2

from qmtl_codegen.openapiv2_bridge import GO_PACKAGE_BASE, prepare
from tests.codegen.conftest import ROOT

PLUGIN = ROOT / ".tools" / "bin" / "protoc-gen-openapiv2"
OPTIONS = "allow_merge=false,json_names_for_fields=true,output_format=json"


def bridge(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    result = subprocess.run(
        [sys.executable, "-m", "qmtl_codegen.openapiv2_bridge"],
        input=request.SerializeToString(),
        capture_output=True,
        check=True,
    )
    return plugin_pb2.CodeGeneratorResponse.FromString(result.stdout)


def test_prepare_sets_placeholder_go_packages_and_strips_its_option(
    codegen_request: plugin_pb2.CodeGeneratorRequest,
) -> None:
    request = copy.deepcopy(codegen_request)
    request.parameter = f"plugin=/bin/x,{OPTIONS}"
    request.proto_file[0].options.go_package = "example.com/kept"
    plugin, payload = prepare(request)
    prepared = plugin_pb2.CodeGeneratorRequest.FromString(payload)
    assert plugin == "/bin/x"
    assert prepared.parameter == OPTIONS
    assert prepared.proto_file[0].options.go_package == "example.com/kept"
    gateway = next(f for f in prepared.proto_file if f.package == "qmtl.gateway.v1")
    assert gateway.options.go_package == f"{GO_PACKAGE_BASE}/qmtl/gateway/v1"


def test_a_missing_plugin_is_an_error_not_a_crash(
    codegen_request: plugin_pb2.CodeGeneratorRequest,
) -> None:
    request = copy.deepcopy(codegen_request)
    request.parameter = "plugin=/nonexistent/protoc-gen-openapiv2"
    assert "is not a file" in bridge(request).error


def test_swagger_documents_come_out(codegen_request: plugin_pb2.CodeGeneratorRequest) -> None:
    assert PLUGIN.exists(), f"{PLUGIN} is missing: run `make setup`"
    request = copy.deepcopy(codegen_request)
    request.parameter = f"plugin={PLUGIN},{OPTIONS}"
    response = bridge(request)
    assert not response.error
    files = {f.name: json.loads(f.content) for f in response.file}
    gateway = files["qmtl/gateway/v1/gateway_service.swagger.json"]
    assert gateway["swagger"] == "2.0"
    ids = {op["operationId"] for item in gateway["paths"].values() for op in item.values()}
    assert "GatewayService_GetQueuesByTag" in ids
    assert bridge(request) == response, "deterministic"
