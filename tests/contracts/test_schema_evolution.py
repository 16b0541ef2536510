"""A new message, with field types the schemas did not use yet, needs no edit but the schema.

`buf generate` on a scratch copy must give its Python class, its mypy stub, golden fixtures
that set every field, and an entry in the field reference, while every existing fixture stays
byte-for-byte as it was (fixtures are append-only).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.contracts.scratch import BUF, ROOT, Run

PROBE = """\
syntax = "proto3";

package qmtl.dag.v1;

import "google/protobuf/field_mask.proto";
import "google/protobuf/wrappers.proto";

// EvolutionProbe exercises field types the v1 schemas do not use yet.
message EvolutionProbe {
  // A signed fixed-width 64-bit number.
  sfixed64 offset = 1;
  // Raw blobs keyed by a small integer.
  map<int32, bytes> blobs = 2;
  // Which fields a partial update touches.
  google.protobuf.FieldMask mask = 3;
  // A nullable ratio.
  google.protobuf.DoubleValue ratio = 4;
  // A 32-bit float.
  float weight = 5;
}
"""


def test_new_message_gets_class_stub_fixtures_and_reference(workspace: Path, run: Run) -> None:
    fixtures = workspace / "tests" / "golden" / "fixtures"
    shutil.copytree(ROOT / "tests" / "golden" / "fixtures", fixtures)
    before = {p.relative_to(fixtures): p.read_bytes() for p in fixtures.rglob("*") if p.is_file()}
    (workspace / "schemas" / "qmtl" / "dag" / "v1" / "evolution_probe.proto").write_text(PROBE)

    result = run(BUF, "generate", cwd=workspace)
    assert result.returncode == 0, result.stderr

    module = workspace / "generated" / "python" / "qmtl" / "dag" / "v1" / "evolution_probe_pb2"
    assert "EvolutionProbe" in module.with_suffix(".py").read_text()
    assert "class EvolutionProbe(" in module.with_suffix(".pyi").read_text()

    samples = sorted((fixtures / "qmtl.dag.v1.EvolutionProbe").glob("*.json"))
    assert samples, "no fixture written for the new message"
    as_json = json.loads(samples[0].read_text())
    assert set(as_json) == {"offset", "blobs", "mask", "ratio", "weight"}
    assert isinstance(as_json["offset"], str), "64-bit integers travel as JSON strings"
    assert as_json["mask"] == "nodeId,spec.interval", "FieldMask uses its JSON string form"

    reference = (workspace / "docs" / "schemas" / "reference.md").read_text()
    assert "EvolutionProbe" in reference
    assert "A signed fixed-width 64-bit number." in reference

    after = {p.relative_to(fixtures): p.read_bytes() for p in fixtures.rglob("*") if p.is_file()}
    assert {k: after[k] for k in before} == before, "an existing fixture was rewritten"


PROBE_MESSAGES = """\
syntax = "proto3";

package qmtl.gateway.v1;

// GetProbeRequest asks for one probe.
message GetProbeRequest {
  // Which probe.
  string probe_id = 1;
  // How many samples to return.
  int32 limit = 2;
}

// GetProbeResponse is one probe.
message GetProbeResponse {
  // The probe's samples.
  repeated double samples = 1;
}
"""

PROBE_RPC = """\
  // Returns one probe.
  rpc GetProbe(GetProbeRequest) returns (GetProbeResponse) {
    option (google.api.http) = {get: "/v1/gateway/probes/{probe_id}"};
    option (qmtl.api.v1.access) = {
      access: ACCESS_PUBLIC_READ
      required_scopes: "probes:read"
    };
  }
}
"""


def test_new_get_rpc_gets_route_client_openapi_schema_and_fixtures(
    workspace: Path, run: Run
) -> None:
    gateway = workspace / "schemas" / "qmtl" / "gateway" / "v1"
    (gateway / "probe_messages.proto").write_text(PROBE_MESSAGES)
    service = gateway / "gateway_service.proto"
    text = service.read_text()
    text = text.replace(
        'import "qmtl/gateway/v1/health_messages.proto";\n',
        'import "qmtl/gateway/v1/health_messages.proto";\n'
        'import "qmtl/gateway/v1/probe_messages.proto";\n',
    )
    service.write_text(text[: text.rstrip().rindex("}")] + PROBE_RPC)

    result = run(BUF, "generate", cwd=workspace)
    assert result.returncode == 0, result.stderr

    python = workspace / "generated" / "python" / "qmtl" / "gateway" / "v1"
    routes = (python / "gateway_service_http.py").read_text()
    assert "/v1/gateway/probes/{probe_id}" in routes
    handlers = (python / "gateway_service_handler.py").read_text()
    assert "async def get_probe(" in handlers
    assert 'full_name="qmtl.gateway.v1.GatewayService.GetProbe"' in handlers
    adapter = (python / "gateway_service_grpc.py").read_text()
    assert "async def GetProbe(" in adapter
    client = (python / "gateway_service_client.py").read_text()
    assert "def get_probe(" in client

    document = json.loads((workspace / "docs" / "openapi" / "public.openapi.json").read_text())
    operation = document["paths"]["/v1/gateway/probes/{probe_id}"]["get"]
    assert operation["operationId"] == "GatewayService_GetProbe"
    assert operation["x-qmtl-required-scopes"] == ["probes:read"]

    schemas = workspace / "generated" / "jsonschema"
    for name in ("GetProbeRequest", "GetProbeResponse"):
        assert (schemas / f"qmtl.gateway.v1.{name}.schema.json").is_file()
        # The generated route tests answer each rpc with its response's golden fixture.
        fixtures = workspace / "tests" / "golden" / "fixtures" / f"qmtl.gateway.v1.{name}"
        assert sorted(fixtures.glob("*.binpb")), f"no fixture for {name}"
