"""The OpenAPI 3.1 documents: valid, split by listener exactly as the access options say.

Documents are generated in-process from the real schemas; a compiled probe file shows that a
new rpc needs nothing but its schema, and that the generator refuses what HTTP.md forbids.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.compiler import plugin_pb2
from jsonschema import Draft202012Validator
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator

from qmtl_codegen import options
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.openapi import area_of, generate
from qmtl_codegen.plugin import GeneratorError
from qmtl_codegen.wellknown_patterns import DURATION_PATTERN, TIMESTAMP_PATTERN
from tests.codegen.conftest import ROOT
from tests.codegen.test_jsonschema_mapping import compile_probe

Document = dict[str, Any]
AREAS = ("gateway", "dagmanager")
PUBLIC_MERGED = "public.openapi.json"


def run(request: plugin_pb2.CodeGeneratorRequest, parameter: str) -> dict[str, Document]:
    request = copy.deepcopy(request)
    request.parameter = parameter
    found = {}
    for output in generate(request):
        assert isinstance(output.content, str)
        found[output.name] = json.loads(output.content)
    return found


@pytest.fixture(scope="module")
def docs(codegen_request: plugin_pb2.CodeGeneratorRequest) -> dict[str, Document]:
    return run(codegen_request, "version=0.1.0")


def operations(document: Document) -> dict[str, tuple[str, str, Document]]:
    """operationId -> (verb, path, operation)."""
    return {
        op["operationId"]: (verb, path, op)
        for path, item in document["paths"].items()
        for verb, op in item.items()
    }


def rpcs(schema: Schema, package: str, access: str) -> dict[str, options.AccessInfo]:
    """`<Service>_<Rpc>` -> access rule, for the package's rpcs of one access class."""
    found = {}
    for service in schema.services():
        if service.file.package != package:
            continue
        for method in service.methods:
            info = options.require_access(schema.pool, method)
            if info.access == access:
                found[f"{service.name}_{method.name}"] = info
    return found


def op(docs: dict[str, Document], name: str, operation_id: str) -> Document:
    found: Document = operations(docs[name])[operation_id][2]
    return found


def test_the_expected_documents(docs: dict[str, Document]) -> None:
    assert sorted(docs) == sorted(
        [f"{area}.{audience}.openapi.json" for area in AREAS for audience in ("public", "internal")]
        + [PUBLIC_MERGED]
    )


def test_every_document_is_valid_openapi_3_1(docs: dict[str, Document]) -> None:
    for name, document in docs.items():
        assert document["openapi"] == "3.1.0"
        assert document["info"]["version"] == "0.1.0"
        errors = [e.message for e in OpenAPIV31SpecValidator(document).iter_errors()]
        assert errors == [], name


@pytest.mark.parametrize("area", AREAS)
def test_public_documents_hold_exactly_the_public_reads_as_get(
    schema: Schema, docs: dict[str, Document], area: str
) -> None:
    found = operations(docs[f"{area}.public.openapi.json"])
    expected = rpcs(schema, f"qmtl.{area}.v1", options.ACCESS_PUBLIC_READ)
    assert set(found) == set(expected)
    assert {verb for verb, _, _ in found.values()} == {"get"}
    for name, (_, _, operation) in found.items():
        assert operation["x-qmtl-access"] == "PUBLIC_READ"
        assert "requestBody" not in operation
        if expected[name].allow_anonymous:
            assert "security" not in operation
            assert "401" not in operation["responses"]
        else:
            assert operation["security"] == [{"bearerAuth": list(expected[name].scopes)}]
            assert operation["x-qmtl-required-scopes"] == list(expected[name].scopes)
            assert {"401", "403"} <= set(operation["responses"])
            for scope in expected[name].scopes:
                assert f"`{scope}`" in operation["description"]


@pytest.mark.parametrize("area", AREAS)
def test_internal_documents_hold_exactly_the_internal_rpcs_with_security(
    schema: Schema, docs: dict[str, Document], area: str
) -> None:
    found = operations(docs[f"{area}.internal.openapi.json"])
    expected = rpcs(schema, f"qmtl.{area}.v1", options.ACCESS_INTERNAL)
    assert set(found) == set(expected)
    for name, (verb, path, operation) in found.items():
        assert verb in ("get", "post")
        assert "/internal/" in path
        assert operation["security"] == [{"bearerAuth": list(expected[name].scopes)}]
        assert operation["x-qmtl-required-scopes"] == list(expected[name].scopes)
        assert {"401", "403"} <= set(operation["responses"])
        if verb == "post":
            assert "content" in operation["requestBody"]
            assert {"413", "415"} <= set(operation["responses"])
        else:
            assert "requestBody" not in operation
            assert not {"413", "415"} & set(operation["responses"])
    assert {verb for verb, _, _ in found.values()} == {"get", "post"}, "reads and writes"
    scheme = docs[f"{area}.internal.openapi.json"]["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == (
        "http",
        "bearer",
        "qmtl-service-token",
    )


def test_the_merged_document_has_every_public_operation(docs: dict[str, Document]) -> None:
    merged = docs[PUBLIC_MERGED]
    expected: dict[str, Any] = {}
    for area in AREAS:
        expected.update(docs[f"{area}.public.openapi.json"]["paths"])
    assert merged["paths"] == expected
    assert [tag["name"] for tag in merged["tags"]] == ["DagManagerService", "GatewayService"]
    assert "405" in merged["info"]["description"]


def test_components_hold_exactly_what_is_referenced(docs: dict[str, Document]) -> None:
    for name, document in docs.items():
        text = json.dumps(document)
        refs = {part.split('"', 1)[0] for part in text.split('"$ref": "')[1:]}
        # A proto-name alias refers to its field's property: `<schema>/properties/<field>`.
        schemas = {
            r.removeprefix("#/components/schemas/").split("/", 1)[0]
            for r in refs
            if "/schemas/" in r
        }
        responses = {r.removeprefix("#/components/responses/") for r in refs if "/responses/" in r}
        assert schemas == set(document["components"]["schemas"]), name
        assert responses == set(document["components"].get("responses", {})), name


def test_get_queues_by_tag(docs: dict[str, Document]) -> None:
    operation = op(docs, "gateway.public.openapi.json", "GatewayService_GetQueuesByTag")
    assert operation["summary"] == (
        "Returns the queues whose nodes match tags and interval, as DAG Manager resolves them;"
        " SDK TagQueryNodes use it to reconcile their inputs."
    )
    assert operation["tags"] == ["GatewayService"]
    tags, interval, match_mode = operation["parameters"]
    assert (tags["name"], tags["in"], tags["style"], tags["explode"]) == (
        "tags",
        "query",
        "form",
        True,
    )
    assert tags["schema"] == {"type": "array", "items": {"type": "string"}}
    assert (interval["name"], interval["required"]) == ("interval", True)
    assert interval["schema"] == {
        "type": "integer",
        "format": "int64",
        "minimum": -(2**63),
        "maximum": 2**63 - 1,
        # A plain int64 (0 = none) that is REQUIRED: 0 is refused like a missing value.
        "not": {"anyOf": [{"type": "string", "pattern": "^-?0+$"}, {"const": 0}]},
    }
    assert match_mode["name"] == "matchMode"
    assert match_mode["schema"] == {"$ref": "#/components/schemas/qmtl.common.v1.MatchMode"}
    responses = operation["responses"]
    # Exactly the declared codes plus the transport's (tests/docs/test_openapi_errors.py).
    assert set(responses) == {"200", "400", "401", "403", "406", "422", "500", "501", "503", "504"}
    ok = responses["200"]["content"]
    assert list(ok) == ["application/json", "application/x-protobuf"], "JSON shown first"
    assert ok["application/x-protobuf"]["schema"]["contentMediaType"] == "application/x-protobuf"
    assert ok["application/json"]["schema"] == {
        "$ref": "#/components/schemas/qmtl.gateway.v1.GetQueuesByTagResponse"
    }
    schemas = docs["gateway.public.openapi.json"]["components"]["schemas"]
    descriptor = schemas["qmtl.dag.v1.QueueDescriptor"]["properties"]
    # Not REQUIRED, so `null` (proto3 JSON's spelling of the default) is accepted too.
    assert descriptor["global"]["anyOf"] == [{"type": "boolean"}, {"type": "null"}]
    assert "isGlobal" not in descriptor
    diff = docs["dagmanager.internal.openapi.json"]["components"]["schemas"]
    dag = diff["qmtl.dagmanager.v1.DiffRequest"]["properties"]["dag"]
    assert "anyOf" not in dag, "a REQUIRED field's null is refused (422), so not documented"


def test_path_parameters_and_not_found(docs: dict[str, Document]) -> None:
    document = docs["dagmanager.public.openapi.json"]
    assert "/v1/dag-manager/nodes/{node_id}" in document["paths"]
    operation = op(docs, "dagmanager.public.openapi.json", "DagManagerService_GetNode")
    (parameter,) = operation["parameters"]
    assert (parameter["name"], parameter["in"], parameter["required"]) == ("node_id", "path", True)
    assert "404" in operation["responses"]
    listing = op(docs, "dagmanager.public.openapi.json", "DagManagerService_ListNodes")
    assert "404" not in listing["responses"]
    assert "422" not in listing["responses"], "ListNodesRequest has no REQUIRED field"
    names = [p["name"] for p in listing["parameters"]]
    assert names == ["page.pageSize", "page.pageToken", "tags", "matchMode", "interval", "nodeType"]


def test_well_known_query_parameters(docs: dict[str, Document]) -> None:
    events = op(docs, "gateway.public.openapi.json", "GatewayService_ListEvents")
    since = {p["name"]: p for p in events["parameters"]}["since"]
    assert since["schema"] == {
        "type": "string",
        "format": "date-time",
        "pattern": TIMESTAMP_PATTERN,
    }


def test_request_bodies_take_both_encodings(docs: dict[str, Document]) -> None:
    submit = op(docs, "gateway.internal.openapi.json", "GatewayService_SubmitStrategy")
    body = submit["requestBody"]["content"]
    assert list(body) == ["application/json", "application/x-protobuf"]
    assert body["application/x-protobuf"]["schema"]["x-protobuf-message"] == (
        "qmtl.gateway.v1.SubmitStrategyRequest"
    )
    assert body["application/json"]["schema"] == {
        "$ref": "#/components/schemas/qmtl.gateway.v1.SubmitStrategyRequest"
    }
    assert {"415", "422"} <= set(submit["responses"])
    assert "parameters" not in submit
    schemas = docs["gateway.internal.openapi.json"]["components"]["schemas"]
    wait = schemas["qmtl.gateway.v1.SubmitStrategyRequest"]["properties"]["waitTimeout"]
    assert wait["anyOf"] == [{"type": "string", "pattern": DURATION_PATTERN}, {"type": "null"}]


def test_a_path_bound_field_is_not_part_of_the_body(docs: dict[str, Document]) -> None:
    # google.api.http: with `body: "*"` the body is every field the path does not bind.
    retry = op(docs, "gateway.internal.openapi.json", "GatewayService_RetryStrategy")
    assert retry["parameters"][0]["name"] == "strategy_id"
    body = retry["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"] == {}
    assert body["additionalProperties"] is False
    assert "required" not in body
    assert "allOf" not in body, "no alias constraint naming a dropped property"
    validator = Draft202012Validator(body)
    assert validator.is_valid({})
    assert not validator.is_valid({"strategyId": "s-1"})
    assert not validator.is_valid({"strategy_id": "s-1"})
    assert {"404", "415", "422"} <= set(retry["responses"])


def demands_a_field(schema: Document) -> bool:
    """Whether `{}` fails an object schema: `required`, or a REQUIRED alias's two spellings."""
    either = [c for c in schema.get("allOf", []) if "anyOf" in c]
    return "required" in schema or any(all("required" in b for b in c["anyOf"]) for c in either)


def test_a_body_is_required_exactly_when_the_empty_message_is_invalid(
    docs: dict[str, Document],
) -> None:
    # An absent body is the empty message in either encoding (HTTP.md).
    bodies = 0
    for name in ("gateway.internal.openapi.json", "dagmanager.internal.openapi.json"):
        for item in docs[name]["paths"].values():
            for operation in item.values():
                if "requestBody" not in operation:
                    continue
                bodies += 1
                body = operation["requestBody"]
                schema = body["content"]["application/json"]["schema"]
                if "$ref" in schema:
                    ref = schema["$ref"].removeprefix("#/components/schemas/")
                    schema = docs[name]["components"]["schemas"][ref]
                assert body["required"] == demands_a_field(schema), operation["operationId"]
    assert bodies >= 6
    gc = op(docs, "dagmanager.internal.openapi.json", "DagManagerService_TriggerGc")
    submit = op(docs, "gateway.internal.openapi.json", "GatewayService_SubmitStrategy")
    retry = op(docs, "gateway.internal.openapi.json", "GatewayService_RetryStrategy")
    assert (gc["requestBody"]["required"], retry["requestBody"]["required"]) == (False, False)
    assert submit["requestBody"]["required"] is True


def test_error_responses_are_error_details(docs: dict[str, Document]) -> None:
    # Inline per operation, exactly its codes (tests/docs/test_openapi_errors.py checks them all).
    submit = op(docs, "gateway.internal.openapi.json", "GatewayService_SubmitStrategy")
    responses = submit["responses"]
    for status, response in responses.items():
        if status == "200":
            continue
        content = response["content"]
        assert content["application/json"]["schema"] == {
            "$ref": "#/components/schemas/qmtl.common.v1.ErrorDetail"
        }, status
        assert "application/x-protobuf" in content
    assert "`E_MALFORMED_BODY`" in responses["400"]["description"]
    assert "`E_DUPLICATE`" in responses["409"]["description"]
    assert "`E_PAYLOAD_TOO_LARGE`" in responses["413"]["description"]
    assert "default" not in responses, "no catch-all: the list is the whole truth"
    assert "Retry-After" in responses["503"]["headers"]
    challenge = responses["401"]["headers"]["WWW-Authenticate"]
    assert challenge["schema"]["pattern"] == '^Bearer realm="qmtl"'


def test_public_documents_state_the_allow_header_the_server_sends(
    docs: dict[str, Document],
) -> None:
    # Starlette answers a 405 on a GET route with `Allow: GET, HEAD` (HEAD follows GET).
    public = [name for name in docs if ".public." in name or name == PUBLIC_MERGED]
    assert public
    for name in public:
        description = docs[name]["info"]["description"]
        assert "`Allow: GET, HEAD`" in description, name
        assert "`Allow: GET`" not in description, name


def test_the_package_layout_holds_the_same_area_documents(
    codegen_request: plugin_pb2.CodeGeneratorRequest, docs: dict[str, Document]
) -> None:
    packaged = run(codegen_request, "version=0.1.0,layout=package")
    assert packaged == {
        f"qmtl/{name.split('.')[0]}/v1/openapi/{name}": document
        for name, document in docs.items()
        if name != PUBLIC_MERGED
    }


def test_generation_is_deterministic(codegen_request: plugin_pb2.CodeGeneratorRequest) -> None:
    shuffled = copy.deepcopy(codegen_request)
    shuffled.ClearField("file_to_generate")
    shuffled.file_to_generate.extend(reversed(codegen_request.file_to_generate))
    first, second = list(generate(codegen_request)), list(generate(shuffled))
    assert first == second
    for output in first:
        assert isinstance(output.content, str)
        canonical = json.dumps(json.loads(output.content), indent=2, ensure_ascii=False) + "\n"
        assert output.content == canonical


def test_committed_documents_are_current(docs: dict[str, Document]) -> None:
    for name, document in docs.items():
        committed = json.loads((ROOT / "docs" / "openapi" / name).read_text())
        committed["info"]["version"] = document["info"]["version"]
        assert committed == document, f"{name}: run `make generate`"


def test_runs_as_a_protoc_plugin(codegen_request: plugin_pb2.CodeGeneratorRequest) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qmtl_codegen.openapi"],
        input=codegen_request.SerializeToString(),
        capture_output=True,
        check=True,
    )
    response = plugin_pb2.CodeGeneratorResponse.FromString(result.stdout)
    assert not response.error
    assert PUBLIC_MERGED in [f.name for f in response.file]


@pytest.mark.parametrize(
    ("package", "area"),
    [("qmtl.gateway.v1", "gateway"), ("qmtl.dagmanager.v2beta1", "dagmanager"), ("probe", "probe")],
)
def test_area_of(package: str, area: str) -> None:
    assert area_of(package) == area


PROBE_SERVICE = """\
syntax = "proto3";

// A service added after v1.
package probe.v1;

import "google/api/annotations.proto";
import "google/api/field_behavior.proto";
import "google/protobuf/wrappers.proto";
import "qmtl/api/v1/access.proto";

// ProbeRequest names a probe.
message ProbeRequest {
  // Probe ID.
  string probe_id = 1 [(google.api.field_behavior) = REQUIRED];
  // Nested filter.
  Filter filter = 2;
  // A nullable limit.
  google.protobuf.Int32Value limit = 3;
}

// Filter narrows a probe.
message Filter {
  // Kinds to include.
  repeated string kinds = 1;
}

// ProbeResponse is a probe.
message ProbeResponse {
  // The filter it used.
  Filter filter = 1;
}

// ProbeService is a service added after v1.
service ProbeService {
  // Reads one probe. More text.
  rpc GetProbe(ProbeRequest) returns (ProbeResponse) {
    option (google.api.http) = {
      get: "/v1/probe/{probe_id}"
      additional_bindings {get: "/v1/probe-alias/{probe_id=**}"}
    };
    option (qmtl.api.v1.access) = {
      access: ACCESS_PUBLIC_READ
      required_scopes: "probe:read"
    };
  }

  // Writes a probe's filter.
  rpc SetFilter(ProbeRequest) returns (ProbeResponse) {
    option deprecated = true;
    option (google.api.http) = {
      put: "/v1/probe/internal/{probe_id}/filter"
      body: "filter"
    };
    option (qmtl.api.v1.access) = {access: ACCESS_INTERNAL};
  }

  // gRPC only.
  rpc Ping(ProbeRequest) returns (ProbeResponse) {
    option (qmtl.api.v1.access) = {access: ACCESS_INTERNAL};
  }
}
"""


def test_a_new_rpc_needs_only_its_schema(
    codegen_request: plugin_pb2.CodeGeneratorRequest, tmp_path: Path
) -> None:
    probe = compile_probe(codegen_request, tmp_path, PROBE_SERVICE)
    found = run(probe, "")
    assert set(found) == {PUBLIC_MERGED, "probe.internal.openapi.json", "probe.public.openapi.json"}
    for document in found.values():
        assert not list(OpenAPIV31SpecValidator(document).iter_errors())
    public = operations(found["probe.public.openapi.json"])
    assert set(public) == {"ProbeService_GetProbe", "ProbeService_GetProbe_1"}
    verb, path, get = public["ProbeService_GetProbe"]
    assert (verb, path, get["summary"]) == ("get", "/v1/probe/{probe_id}", "Reads one probe.")
    assert [p["name"] for p in get["parameters"]] == ["probe_id", "filter.kinds", "limit"]
    limit = get["parameters"][2]["schema"]
    assert limit["type"] == "integer", "a wrapper parameter is its value; absent is null"
    assert public["ProbeService_GetProbe_1"][1] == "/v1/probe-alias/{probe_id}"
    internal = operations(found["probe.internal.openapi.json"])
    assert set(internal) == {"ProbeService_SetFilter"}, "gRPC-only methods have no operation"
    verb, _, put = internal["ProbeService_SetFilter"]
    assert (verb, put["deprecated"]) == ("put", True)
    assert put["security"] == [{"bearerAuth": []}]
    assert "no particular scope" in put["description"]
    assert [p["name"] for p in put["parameters"]] == ["probe_id", "limit"]
    body = put["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/probe.v1.Filter"}
    assert body["application/x-protobuf"]["schema"]["x-protobuf-message"] == "probe.v1.Filter"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('post: "/v1/probe" body: "*"', "GET only"),
        ('get: "/v1/probe" body: "*"', "cannot carry a body"),
        ('custom {kind: "HEAD" path: "/v1/probe"}', "not supported"),
    ],
)
def test_what_http_md_forbids_is_refused(
    codegen_request: plugin_pb2.CodeGeneratorRequest, tmp_path: Path, rule: str, message: str
) -> None:
    source = PROBE_SERVICE.replace('get: "/v1/probe/{probe_id}"', rule, 1).replace(
        'additional_bindings {get: "/v1/probe-alias/{probe_id=**}"}', ""
    )
    probe = compile_probe(codegen_request, tmp_path, source)
    with pytest.raises(GeneratorError, match=message):
        run(probe, "")


def test_two_rpcs_on_one_route_are_refused(
    codegen_request: plugin_pb2.CodeGeneratorRequest, tmp_path: Path
) -> None:
    source = PROBE_SERVICE.replace('"/v1/probe-alias/{probe_id=**}"', '"/v1/probe/{probe_id}"')
    probe = compile_probe(codegen_request, tmp_path, source)
    with pytest.raises(GeneratorError, match="bound by both"):
        run(probe, "")


def test_an_unknown_layout_is_refused(codegen_request: plugin_pb2.CodeGeneratorRequest) -> None:
    with pytest.raises(GeneratorError, match="layout"):
        run(codegen_request, "layout=flat")
