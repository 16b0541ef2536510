"""Per-rpc error lists that are true: every rpc declares its codes, the documents list exactly
those plus the transport's own, and nothing else (no catch-all `default`).

The transport codes are derived here from the schema (access option, HTTP rule, REQUIRED
fields), independently of the generator, so a generator that drops or invents a code fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import options
from qmtl_codegen.api.model import RPC_ERRORS as ERRORS_OPTION
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import GeneratorError
from tests.codegen.test_jsonschema_mapping import compile_probe
from tests.docs.openapi_support import Document, documents, operations

SERVICE_FILES = (
    "qmtl/gateway/v1/gateway_service.proto",
    "qmtl/dagmanager/v1/dag_manager_service.proto",
)


@pytest.fixture(scope="module")
def docs(codegen_request: plugin_pb2.CodeGeneratorRequest) -> dict[str, Document]:
    return documents(codegen_request, "version=0.1.0")


def methods(schema: Schema) -> dict[str, descriptor.MethodDescriptor]:
    """`<Service>_<Rpc>` -> method, for every rpc of every service in the schemas."""
    return {
        f"{service.name}_{method.name}": method
        for service in schema.services()
        for method in service.methods
    }


def declared(schema: Schema, method: descriptor.MethodDescriptor) -> list[str] | None:
    value = options.extension_value(schema.pool, method, ERRORS_OPTION)
    return None if value is None else list(value.codes)


def catalogue(schema: Schema) -> dict[str, int]:
    enum = schema.pool.FindEnumTypeByName("qmtl.common.v1.ErrorCode")  # type: ignore[no-untyped-call]
    found = {}
    for value in enum.values:
        info = options.error_info(schema.pool, value)
        if info is not None:
            found[info.code] = info.http_status
    return found


def has_required(schema: Schema, desc: descriptor.Descriptor, seen: set[str]) -> bool:
    seen.add(desc.full_name)
    for fld in desc.fields:
        if "REQUIRED" in options.field_behaviors(schema.pool, fld):
            return True
        msg = fld.message_type
        if (
            msg is not None
            and msg.full_name not in seen
            and not msg.full_name.startswith("google.protobuf.")
        ):
            if msg.GetOptions().map_entry:
                msg = msg.fields_by_name["value"].message_type
            if msg is not None and has_required(schema, msg, seen):
                return True
    return False


def transport(schema: Schema, method: descriptor.MethodDescriptor) -> set[str]:
    access = options.require_access(schema.pool, method)
    rule = options.http_rule(schema.pool, method)
    assert rule is not None
    codes = {"E_INVALID_ARGUMENT", "E_NOT_ACCEPTABLE", "E_INTERNAL", "E_UNIMPLEMENTED", "E_TIMEOUT"}
    if not access.allow_anonymous:
        codes |= {"E_UNAUTHENTICATED", "E_PERMISSION_DENIED"}
    if rule.primary.body:
        codes |= {"E_MALFORMED_BODY", "E_UNSUPPORTED_MEDIA_TYPE", "E_PAYLOAD_TOO_LARGE"}
    if has_required(schema, method.input_type, set()):
        codes.add("E_VALIDATION")
    return codes


def test_every_rpc_of_the_services_declares_its_errors(schema: Schema) -> None:
    found = {
        f"{method.full_name}": declared(schema, method)
        for service in schema.services()
        if service.file.name in SERVICE_FILES
        for method in service.methods
    }
    assert len(found) >= 20, found
    missing = [name for name, codes in found.items() if codes is None]
    assert not missing, f"rpcs without option ({ERRORS_OPTION}): {missing}"
    known = catalogue(schema)
    for name, codes in found.items():
        assert codes is not None
        assert len(codes) == len(set(codes)), f"{name} repeats a code"
        assert set(codes) <= set(known), f"{name} declares unknown codes {set(codes) - set(known)}"


def test_documents_list_exactly_the_declared_and_transport_codes(
    schema: Schema, docs: dict[str, Document]
) -> None:
    by_id = methods(schema)
    statuses = catalogue(schema)
    checked = 0
    problems = []
    for name, document in sorted(docs.items()):
        for verb, path, operation in operations(document):
            # `<Service>_<Rpc>`, or `<Service>_<Rpc>_<n>` for an additional binding.
            method = by_id["_".join(operation["operationId"].split("_")[:2])]
            codes = declared(schema, method) or []
            expected = set(codes) | transport(schema, method)
            responses = operation["responses"]
            listed: dict[str, str] = {}
            for status, response in responses.items():
                if status == "200":
                    continue
                for code in response.get("x-qmtl-error-codes", []):
                    listed[code] = status
                    if f"`{code}`" not in response["description"]:
                        problems.append(f"{name} {operation['operationId']}: {code} undescribed")
                examples = response["content"]["application/json"].get("examples", {})
                if set(examples) != set(response.get("x-qmtl-error-codes", [])):
                    problems.append(f"{name} {operation['operationId']} {status}: examples")
            if set(listed) != expected:
                problems.append(
                    f"{name} {verb.upper()} {path}: documents {sorted(listed)}, "
                    f"expected {sorted(expected)}"
                )
            wrong = {c: s for c, s in listed.items() if s != str(statuses[c])}
            if wrong:
                problems.append(f"{name} {operation['operationId']}: wrong statuses {wrong}")
            if "default" in responses:
                problems.append(f"{name} {operation['operationId']}: a catch-all default")
            if operation.get("x-qmtl-errors") != codes:
                problems.append(f"{name} {operation['operationId']}: x-qmtl-errors")
            checked += 1
    assert checked >= 30, checked
    assert not problems, "\n".join(problems)


def test_error_examples_are_error_details(docs: dict[str, Document]) -> None:
    document = docs["gateway.internal.openapi.json"]
    submit = document["paths"]["/v1/gateway/internal/strategies"]["post"]
    conflict = submit["responses"]["409"]
    assert conflict["x-qmtl-error-codes"] == ["E_DUPLICATE", "E_IDEMPOTENCY_CONFLICT"]
    content = conflict["content"]
    assert list(content) == ["application/json", "application/x-protobuf"], "JSON first"
    assert content["application/json"]["schema"] == {
        "$ref": "#/components/schemas/qmtl.common.v1.ErrorDetail"
    }
    assert content["application/json"]["examples"]["E_DUPLICATE"]["value"]["code"] == "E_DUPLICATE"
    unavailable = submit["responses"]["503"]
    assert "Retry-After" in unavailable["headers"]
    assert unavailable["content"]["application/json"]["examples"]["E_UNAVAILABLE"]["value"][
        "retryable"
    ]
    challenge = submit["responses"]["401"]["headers"]["WWW-Authenticate"]
    assert challenge["schema"]["pattern"] == '^Bearer realm="qmtl"'
    health = docs["gateway.public.openapi.json"]["paths"]["/v1/gateway/health"]["get"]
    assert set(health["responses"]) == {"200", "400", "406", "500", "501", "504"}, (
        "an anonymous health read declares no codes: only the transport's own remain"
    )


PROBE = """
syntax = "proto3";
package probe.v1;
import "google/api/annotations.proto";
import "qmtl/api/v1/access.proto";
import "qmtl/api/v1/rpc_errors.proto";
message Probe { string id = 1; }
service ProbeService {
  rpc GetProbe(Probe) returns (Probe) {
    option (google.api.http) = {get: "/v1/probe/{id}"};
    option (qmtl.api.v1.access) = {access: ACCESS_PUBLIC_READ allow_anonymous: true};
    option (qmtl.api.v1.errors) = {codes: [CODES]};
  }
}
"""


@pytest.mark.parametrize(
    ("codes", "message"),
    [('"E_NO_SUCH_CODE"', "E_NO_SUCH_CODE"), ('"E_NOT_FOUND", "E_NOT_FOUND"', "twice|repeats")],
)
def test_a_wrong_declaration_is_refused(
    codegen_request: plugin_pb2.CodeGeneratorRequest, tmp_path: Path, codes: str, message: str
) -> None:
    probe = compile_probe(codegen_request, tmp_path, PROBE.replace("CODES", codes))
    with pytest.raises(GeneratorError, match=message):
        documents(probe)


def test_a_declared_code_is_documented_with_its_status(
    codegen_request: plugin_pb2.CodeGeneratorRequest, tmp_path: Path
) -> None:
    probe = compile_probe(codegen_request, tmp_path, PROBE.replace("CODES", '"E_DUPLICATE"'))
    (document,) = (d for n, d in documents(probe).items() if n == "probe.public.openapi.json")
    operation = document["paths"]["/v1/probe/{id}"]["get"]
    assert operation["responses"]["409"]["x-qmtl-error-codes"] == ["E_DUPLICATE"]
    assert operation["x-qmtl-errors"] == ["E_DUPLICATE"]
    assert "404" not in operation["responses"], "E_NOT_FOUND is not declared"
