"""What the docs need on top of an operation object: examples, curl, exact errors, no repeats.

openapi_operations.OperationBuilder writes the operation from the HTTP rule; `finish` then,
in place:

- drops the summary from the front of the description (Redoc shows both, one above the other);
- puts `application/json` first in every content map (the readable encoding leads; the
  protobuf entry stays second) and adds the golden fixture as the JSON example of the request
  body and the success response (qmtl_codegen.openapi_examples);
- adds an `x-codeSamples` curl command;
- replaces the error responses by exactly the rpc's declared codes (`x-qmtl-errors`) plus the
  transport's own (qmtl_codegen.openapi_errors), one inline response per status.
"""

from __future__ import annotations

from google.protobuf import descriptor

from qmtl_codegen.jsonmapping import JsonMapping, JsonObject
from qmtl_codegen.openapi_errors import (
    ERROR_DETAIL,
    JSON_TYPE,
    ErrorCatalogue,
    transport_codes,
)
from qmtl_codegen.openapi_examples import curl, example
from qmtl_codegen.openapi_operations import Operation
from qmtl_codegen.plugin import GeneratorError

SCHEMA_REF = "#/components/schemas/"


def finish(
    op: Operation,
    result: JsonObject,
    mapping: JsonMapping,
    catalogue: ErrorCatalogue,
    *,
    public_listener: bool,
) -> None:
    """Completes `result`, the operation object of `op`, as the module docstring says."""
    _summary_once(result)
    request = op.method.input_type
    body = result.get("requestBody")
    body_value: JsonObject | None = None
    if body is not None:
        body_message, drop = _body_message(op)
        examples = example(body_message, mapping.visible, drop)
        body["content"] = _json_first(body["content"], examples)
        body_value = examples["fixture"]["value"]
    ok = result["responses"]["200"]
    # The routers send the whole response message (no `response_body`).
    ok["content"] = _json_first(ok["content"], example(op.method.output_type, mapping.visible))
    query = [
        (p["name"], p["schema"].get("type") == "array")
        for p in result.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    ]
    variables = [(v.field, v.spans) for v in op.binding.path.variables]
    full_request = example(request, lambda _: True)["fixture"]["value"]
    source = curl(
        verb=op.verb,
        path=op.path,
        variables=variables,
        query=query,
        request=full_request,
        body=body_value,
        authenticated=op.authenticated,
        public=public_listener,
    )
    result["x-codeSamples"] = [{"lang": "Shell", "label": "curl", "source": source}]
    _errors(op, result, catalogue)


def _errors(op: Operation, result: JsonObject, catalogue: ErrorCatalogue) -> None:
    responses = result["responses"]
    declared = op.declared_errors
    codes = declared or ()
    transport = transport_codes(
        authenticated=op.authenticated,
        has_body="requestBody" in result,
        # The builder documents 422 exactly when the request has REQUIRED fields.
        has_required="422" in responses,
    )
    error_schema = {"$ref": SCHEMA_REF + ERROR_DETAIL}
    result["responses"] = {
        "200": responses["200"],
        **catalogue.responses([*codes, *transport], error_schema),
    }
    if declared is not None:
        result["x-qmtl-errors"] = list(declared)


def _summary_once(result: JsonObject) -> None:
    """Removes the summary sentence from the start of the description, keeping the rest."""
    summary, text = result.get("summary", ""), result.get("description", "")
    pos = 0
    for word in summary.split():
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if not text.startswith(word, pos):
            return
        pos += len(word)
    rest = text[pos:].strip()
    if rest:
        result["description"] = rest
    else:
        result.pop("description", None)


def _json_first(content: JsonObject, examples: JsonObject) -> JsonObject:
    ordered = {JSON_TYPE: {**content[JSON_TYPE], "examples": examples}}
    ordered.update((k, v) for k, v in content.items() if k != JSON_TYPE)
    return ordered


def _body_message(op: Operation) -> tuple[descriptor.Descriptor, list[str]]:
    """The message the body carries and the top-level fields it leaves to the path."""
    request = op.method.input_type
    if op.binding.body == "*":
        return request, sorted(p for p in op.binding.path.fields if "." not in p)
    fld = _field_at(request, op.binding.body, op)
    if fld.message_type is None:
        raise GeneratorError(f"{op.method.full_name}: body field {op.binding.body} is no message")
    return fld.message_type, []


def _field_at(
    desc: descriptor.Descriptor, dotted: str, op: Operation
) -> descriptor.FieldDescriptor:
    current: descriptor.Descriptor | None = desc
    fld: descriptor.FieldDescriptor | None = None
    for part in dotted.split("."):
        fld = current.fields_by_name.get(part) if current is not None else None
        if fld is None:
            raise GeneratorError(f"{op.method.full_name}: {desc.name} has no field {dotted}")
        current = fld.message_type
    assert fld is not None
    return fld
