"""The HTTP operations of the services and their OpenAPI operation objects.

Everything comes from the API model (qmtl_codegen.api), which reads each rpc's
`google.api.http` rule and `(qmtl.api.v1.access)` option and refuses what the routers do not
serve, so a document never lists an operation the routers refuse. Following docs/api/HTTP.md:
path parameters from the template, one query parameter per leaf field not bound to the path
or body, both encodings for bodies, the error responses of qmtl_codegen.openapi_errors and
a bearer requirement with the method's scopes. Nothing is configured per rpc, so a new rpc
needs only its schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import descriptor

from qmtl_codegen import options
from qmtl_codegen.api import model
from qmtl_codegen.decimal_range import INT64_MAX, INT64_MIN, UINT64_MAX
from qmtl_codegen.descriptors import Schema, first_sentence
from qmtl_codegen.jsonmapping import (
    WRAPPERS,
    JsonMapping,
    JsonObject,
    is_inlined,
    is_map,
    json_name,
    not_default,
    scalar,
    wrapped_value,
)
from qmtl_codegen.openapi_errors import DEFAULT, ErrorResponses, OperationTraits, statuses

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SECURITY_SCHEME = "bearerAuth"
# OpenAPI's path item keys, in the order operations are listed under a path.
VERBS = ("get", "put", "post", "delete", "patch")

FD = descriptor.FieldDescriptor


@dataclass(frozen=True, slots=True)
class Operation:
    """One HTTP binding of one rpc."""

    service: descriptor.ServiceDescriptor
    method: descriptor.MethodDescriptor
    binding: model.Binding
    access: options.AccessInfo
    # `<Service>_<Rpc>`, with `_<n>` for the n-th additional binding.
    operation_id: str
    # The rpc's (qmtl.api.v1.errors) codes, checked by the model; None when it sets none.
    declared_errors: tuple[str, ...] | None = None

    @property
    def verb(self) -> str:
        return self.binding.verb.lower()

    @property
    def path(self) -> str:
        """The OpenAPI path: `{field=pattern}` variables become `{field}`."""
        return self.binding.path.render("{{{field}}}")

    @property
    def authenticated(self) -> bool:
        return not self.access.allow_anonymous


def operations(schema: Schema) -> list[Operation]:
    """Every HTTP operation of the target files' services, services sorted by full name.

    Methods without a `google.api.http` rule are gRPC-only and have none.
    """
    found: list[Operation] = []
    for service in sorted(model.services(schema), key=lambda s: s.service.full_name):
        for rpc in service.http_rpcs:
            for binding in rpc.bindings:
                suffix = f"_{binding.index}" if binding.index else ""
                op_id = f"{service.service.name}_{rpc.name}{suffix}"
                found.append(
                    Operation(
                        service.service,
                        rpc.method,
                        binding,
                        rpc.access,
                        op_id,
                        rpc.declared_errors,
                    )
                )
    return found


def content(full_name: str, json_schema: JsonObject) -> JsonObject:
    """Both encodings of one message: its binary encoding and its proto3 JSON form."""
    return {
        PROTOBUF: {
            "schema": {
                "type": "string",
                "contentMediaType": PROTOBUF,
                "description": f"Binary protobuf encoding of `{full_name}`.",
                "x-protobuf-message": full_name,
            }
        },
        JSON: {"schema": json_schema},
    }


class OperationBuilder:
    """Builds the OpenAPI operation object of each Operation."""

    def __init__(self, schema: Schema, mapping: JsonMapping, errors: ErrorResponses) -> None:
        self.schema = schema
        self.mapping = mapping
        self.errors = errors

    def message_content(self, desc: descriptor.Descriptor) -> JsonObject:
        return content(desc.full_name, {"$ref": self.mapping.ref(desc.full_name)})

    def operation(self, op: Operation) -> tuple[JsonObject, list[int | str]]:
        """The operation object and the error statuses (response keys) it refers to."""
        comment = self.schema.comment(op.method.full_name)
        result: JsonObject = {
            "tags": [op.service.name],
            "summary": first_sentence(comment) or op.method.name,
            "description": "\n\n".join(p for p in (comment, _access_note(op)) if p),
            "operationId": op.operation_id,
        }
        if op.method.GetOptions().deprecated:
            result["deprecated"] = True
        result["x-qmtl-access"] = op.access.exposure
        if op.authenticated:
            # OpenAPI 3.1 lets a non-OAuth requirement list the roles it needs: the scopes.
            result["security"] = [{SECURITY_SCHEME: list(op.access.scopes)}]
            result["x-qmtl-required-scopes"] = list(op.access.scopes)
        request = op.method.input_type
        parameters = self.path_parameters(op) + self.query_parameters(op)
        if parameters:
            result["parameters"] = parameters
        if op.binding.body:
            result["requestBody"] = self.request_body(op)
        traits = OperationTraits(
            authenticated=op.authenticated,
            has_path_parameters=bool(op.binding.path.variables),
            has_body=bool(op.binding.body),
            has_required_fields=_has_required(self.mapping, request, set()),
            named_statuses=self.errors.statuses_named_in(self._error_texts(op)),
        )
        errors: list[int | str] = [*statuses(traits), DEFAULT]
        responses: JsonObject = {"200": self.success(op)}
        responses.update({str(s): self.errors.reference(s) for s in errors})
        result["responses"] = responses
        return result, errors

    def _error_texts(self, op: Operation) -> list[str]:
        """Where an rpc names the error codes it answers: its comment and its request fields'."""
        request = op.method.input_type
        fields = [self.schema.comment(f.full_name) for f in request.fields]
        return [self.schema.comment(op.method.full_name), *fields]

    def success(self, op: Operation) -> JsonObject:
        # The whole response is the body: the model refuses `response_body`.
        response = op.method.output_type
        text = first_sentence(self.schema.comment(response.full_name))
        return {"description": text or "OK", "content": self.message_content(response)}

    def request_body(self, op: Operation) -> JsonObject:
        """The request body: required exactly when `{}`, the empty message, is not valid.

        An absent body is the empty message in either encoding (zero bytes of protobuf), so
        the routers read it like `{}`: a 422 when the body part has REQUIRED fields, otherwise
        a request like any other (docs/api/HTTP.md).
        """
        request = op.method.input_type
        if op.binding.body == "*":
            text = self.schema.comment(request.full_name)
            json_schema = self.whole_request(op)
            body_message = request
            bound = set(op.binding.path.fields)
        else:
            fld = model.field_at(request, op.binding.body, op.method.full_name).leaf
            text = self.schema.comment(fld.full_name)
            json_schema = self.field_content(fld)[JSON]["schema"]
            body_message = fld.message_type
            bound = set()
        required = any(
            self.mapping.required(f) and f.name not in bound
            for f in self.mapping.fields(body_message)
        )
        body: JsonObject = {"description": text} if text else {}
        body_content = content(body_message.full_name, json_schema)
        return {**body, "required": required, "content": body_content}

    def whole_request(self, op: Operation) -> JsonObject:
        """The JSON schema of a `body: "*"` request.

        As google.api.http defines it, the fields bound to the path are not part of the body:
        such a request gets its message schema inline without them, so the closed object
        forbids them, and the routers refuse them with 400 (grpc-gateway instead invents a
        `<Rpc>Body` message).
        """
        request = op.method.input_type
        # Top-level only: the model refuses a nested path variable with `body: "*"`.
        bound = set(op.binding.path.fields)
        if not bound:
            return {"$ref": self.mapping.ref(request.full_name)}
        schema = self.mapping.message(request)
        names = set()
        for name in bound:
            fld = request.fields_by_name[name]
            names |= {fld.name, json_name(fld)}
        for name in names:
            schema["properties"].pop(name, None)
        required = [name for name in schema.get("required", []) if name not in names]
        if required:
            schema["required"] = required
        else:
            schema.pop("required", None)
        _drop_constraints_on(schema, names)
        listed = ", ".join(f"`{json_name(request.fields_by_name[n])}`" for n in sorted(bound))
        note = f"Fields bound to the path ({listed}) are not part of the body (400 if sent)."
        schema["description"] = "\n\n".join(p for p in (schema.get("description"), note) if p)
        return schema

    def field_content(self, fld: descriptor.FieldDescriptor) -> JsonObject:
        """Both encodings of a message field used as the whole body (`body: "field"`)."""
        return content(fld.message_type.full_name, self.mapping.value(fld))

    def path_parameters(self, op: Operation) -> list[JsonObject]:
        found = []
        for variable, path in zip(op.binding.path.variables, op.binding.path_fields, strict=True):
            fld = path.leaf
            text = self.schema.comment(fld.full_name)
            if variable.pattern != "*":
                text += f"\n\nMatches the path segments `{variable.pattern}`."
            parameter: JsonObject = {"name": variable.field, "in": "path", "required": True}
            if text.strip():
                parameter["description"] = text.strip()
            # A path segment is never empty: the route would not match.
            parameter["schema"] = {**_parameter_schema(self.mapping, fld), **_non_empty(fld)}
            found.append(parameter)
        return found

    def query_parameters(self, op: Operation) -> list[JsonObject]:
        return [
            self._query_parameter(q.path.leaf, ".".join(q.path.json_path), q.required)
            for q in op.binding.query
        ]

    def _query_parameter(
        self, fld: descriptor.FieldDescriptor, name: str, required: bool
    ) -> JsonObject:
        parameter: JsonObject = {"name": name, "in": "query"}
        text = self.schema.comment(fld.full_name)
        if text:
            parameter["description"] = text
        parameter["required"] = required
        if fld.GetOptions().deprecated:
            parameter["deprecated"] = True
        value = _parameter_schema(self.mapping, fld)
        if required and not fld.has_presence and not fld.is_repeated:
            value.update(not_default(fld))
        if fld.is_repeated:
            # `?tags=a&tags=b`: form style with explode repeats the parameter per element.
            parameter.update(style="form", explode=True)
            value = {"type": "array", "items": value}
            if required:
                value.update(not_default(fld))
        parameter["schema"] = value
        return parameter


# A parameter is text either way, so 64-bit integers are plain integers with their range here
# (the routers parse decimal digits and refuse a value out of range with 400).
_INTEGER_PARAMETERS: dict[int, JsonObject] = {
    kind: {"type": "integer", "format": fmt, "minimum": low, "maximum": high}
    for kinds, fmt, low, high in (
        ((FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64), "int64", INT64_MIN, INT64_MAX),
        ((FD.TYPE_UINT64, FD.TYPE_FIXED64), "uint64", 0, UINT64_MAX),
    )
    for kind in kinds
}


def _parameter_schema(mapping: JsonMapping, fld: descriptor.FieldDescriptor) -> JsonObject:
    # A wrapper's parameter is its wrapped value; leaving the parameter out is the null.
    if fld.message_type is not None and fld.message_type.full_name in WRAPPERS:
        fld = wrapped_value(fld.message_type)
    elif fld.message_type is not None or fld.enum_type is not None:
        return mapping.value(fld)
    if fld.type in _INTEGER_PARAMETERS:
        return dict(_INTEGER_PARAMETERS[fld.type])
    return scalar(fld)


def _non_empty(fld: descriptor.FieldDescriptor) -> JsonObject:
    return {"minLength": 1} if fld.type in (FD.TYPE_STRING, FD.TYPE_BYTES) else {}


def _drop_constraints_on(schema: JsonObject, names: set[str]) -> None:
    """Removes the constraints on the properties `names`, which no longer exist.

    Those are the oneof and alias ones (`not: {anyOf: [{required: [...]}]}`, branch by
    branch), a REQUIRED alias's `anyOf` of its spellings (whole), and `x-oneof` members.
    """
    kept = []
    for constraint in schema.get("allOf", []):
        if "not" not in constraint:
            if not any(names & set(c["required"]) for c in constraint["anyOf"]):
                kept.append(constraint)
            continue
        choices = [c for c in constraint["not"]["anyOf"] if not names & set(c["required"])]
        if choices:
            kept.append({**constraint, "not": {"anyOf": choices}})
    if kept:
        schema["allOf"] = kept
    else:
        schema.pop("allOf", None)
    oneofs = {
        oneof: [m for m in members if m not in names]
        for oneof, members in schema.get("x-oneof", {}).items()
    }
    if any(oneofs.values()):
        schema["x-oneof"] = {oneof: members for oneof, members in oneofs.items() if members}
    else:
        schema.pop("x-oneof", None)


def _has_required(mapping: JsonMapping, desc: descriptor.Descriptor, seen: set[str]) -> bool:
    """Whether any field reachable from `desc` is marked REQUIRED (a reason for 422)."""
    seen.add(desc.full_name)
    for fld in desc.fields:
        if mapping.required(fld):
            return True
        msg = fld.message_type
        if msg is not None and msg.full_name not in seen and not is_inlined(msg):
            target = msg.fields_by_name["value"].message_type if is_map(fld) else msg
            if target is not None and _has_required(mapping, target, seen):
                return True
    return False


def _access_note(op: Operation) -> str:
    scopes = ", ".join(f"`{scope}`" for scope in op.access.scopes)
    if not op.authenticated:
        return "**Access:** public, no authentication."
    listener = "public" if op.access.is_public else "internal listener only"
    needs = f"the scopes {scopes}" if scopes else "no particular scope"
    return (
        f"**Access:** {listener}; a bearer service token holding {needs} "
        "(401 without a valid token, 403 without the scopes)."
    )
