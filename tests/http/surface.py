"""The HTTP surface as the schemas declare it, read from the generated descriptors alone.

Tests parametrize over `OPERATIONS`, so an rpc added to a schema is covered after `make
generate` with no edit here. Operations come from each method's `google.api.http` and
`(qmtl.api.v1.access)` options, independently of the generated routers, so a route the
generator forgot shows up as a failing request, not as a missing test.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf import descriptor, json_format, message, message_factory

from qmtl.api.v1 import access_pb2, visibility_pb2
from qmtl.runtime.auth import HmacTokenVerifier, issue_token
from qmtl_codegen.httpmodel import python_module, snake_case
from tests.pb2_modules import generated_pb2_modules

FIXTURES = Path(__file__).resolve().parents[1] / "golden" / "fixtures"
SECRET = b"tests-http-secret"
VERIFIER = HmacTokenVerifier(SECRET)
_VARIABLE = re.compile(r"\{([^{}=]+)(?:=([^{}]*))?\}")


@dataclass(frozen=True)
class Op:
    """One rpc with an HTTP binding (its first; additional bindings route the same way)."""

    service: descriptor.ServiceDescriptor
    method: descriptor.MethodDescriptor
    verb: str
    path: str
    body: str
    public: bool
    scopes: tuple[str, ...]
    anonymous: bool

    @property
    def id(self) -> str:
        return f"{self.service.name}.{self.method.name}"

    @property
    def python_name(self) -> str:
        return snake_case(self.method.name)

    @property
    def request_class(self) -> type[message.Message]:
        return message_factory.GetMessageClass(self.method.input_type)

    @property
    def response_class(self) -> type[message.Message]:
        return message_factory.GetMessageClass(self.method.output_type)

    @property
    def path_fields(self) -> list[str]:
        return [match.group(1) for match in _VARIABLE.finditer(self.path)]

    def __str__(self) -> str:
        return self.id


def _operations() -> list[Op]:
    found: list[Op] = []
    for module in generated_pb2_modules():
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                options = method.GetOptions()
                if not options.HasExtension(annotations_pb2.http):
                    continue
                rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
                access = options.Extensions[access_pb2.access]
                verb = rule.WhichOneof("pattern")
                assert verb is not None, method.full_name
                assert verb != "custom", method.full_name
                found.append(
                    Op(
                        service=service,
                        method=method,
                        verb=verb.upper(),
                        path=getattr(rule, verb),
                        body=rule.body,
                        public=access.access == access_pb2.ACCESS_PUBLIC_READ,
                        scopes=tuple(access.required_scopes),
                        anonymous=access.allow_anonymous,
                    )
                )
    return sorted(found, key=lambda op: op.id)


OPERATIONS = _operations()
PUBLIC = [op for op in OPERATIONS if op.public]
INTERNAL = [op for op in OPERATIONS if not op.public]
AUTHENTICATED = [op for op in OPERATIONS if not op.anonymous]
ANONYMOUS = [op for op in OPERATIONS if op.anonymous]
WITH_BODY = [op for op in OPERATIONS if op.body]
SERVICES = sorted({op.service.full_name: op.service for op in OPERATIONS}.values(), key=str)


def ids(op: Op) -> str:
    return op.id


def http_module(service: descriptor.ServiceDescriptor) -> ModuleType:
    """The generated router module of a service: `<file>_pb2` -> `<file>_http`."""
    return importlib.import_module(python_module(service.file.name).removesuffix("_pb2") + "_http")


def client_module(service: descriptor.ServiceDescriptor) -> ModuleType:
    return importlib.import_module(
        python_module(service.file.name).removesuffix("_pb2") + "_client"
    )


def required_fields(desc: descriptor.Descriptor) -> list[descriptor.FieldDescriptor]:
    return [
        field
        for field in desc.fields
        if field_behavior_pb2.REQUIRED
        in field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    ]


@cache
def fixture_bytes(full_name: str) -> bytes:
    """The first "full" golden fixture of a message, binary encoded."""
    stems = sorted((FIXTURES / full_name).glob("full-*.binpb"))
    assert stems, f"no golden fixture for {full_name}: run `make generate`"
    return stems[0].read_bytes()


def fixture_json(full_name: str) -> dict[str, Any]:
    """The JSON mapping of the same fixture, from its .json twin."""
    stem = sorted((FIXTURES / full_name).glob("full-*.binpb"))[0]
    loaded: dict[str, Any] = json.loads(stem.with_suffix(".json").read_text())
    return loaded


def request_fixture(op: Op) -> message.Message:
    return op.request_class.FromString(fixture_bytes(op.method.input_type.full_name))


def body_message(op: Op, request: message.Message | None = None) -> message.Message:
    """The body of a `body: "*"` op: its request (the fixture by default) minus the fields
    the path binds, which google.api.http leaves out of the body (docs/api/HTTP.md)."""
    body = request_fixture(op) if request is None else copy.deepcopy(request)
    for dotted in op.path_fields:
        *parents, last = dotted.split(".")
        holder = body
        for name in parents:
            holder = getattr(holder, name)
        holder.ClearField(last)
    return body


def body_json(op: Op) -> dict[str, Any]:
    """The JSON body of a `body: "*"` op: its fixture's JSON without path-bound fields."""
    return json_format.MessageToDict(body_message(op))


def response_fixture(op: Op) -> message.Message:
    return op.response_class.FromString(fixture_bytes(op.method.output_type.full_name))


def clear_internal_only(msg: message.Message) -> bool:
    """Clears every `(qmtl.api.v1.internal_only)` field of `msg`, at any depth; whether any was.

    Written from the descriptors, apart from the generated tables, as the public routes'
    expected view of a reply.
    """
    cleared = False
    for field, value in msg.ListFields():
        if field.GetOptions().Extensions[visibility_pb2.internal_only]:
            msg.ClearField(field.name)
            cleared = True
        elif field.message_type is not None:
            entry = field.message_type
            if entry.GetOptions().map_entry:
                holds_messages = entry.fields_by_name["value"].message_type is not None
                items = list(value.values()) if holds_messages else []
            else:
                items = list(value) if field.is_repeated else [value]
            cleared = any([clear_internal_only(item) for item in items]) or cleared
    return cleared


def served_response(op: Op) -> message.Message:
    """The response fixture as the op's listener sends it: the public view on public routes."""
    served = response_fixture(op)
    if op.public:
        clear_internal_only(served)
    return served


def served_json(op: Op) -> dict[str, Any]:
    """The JSON of served_response: the fixture's .json twin when nothing was cleared."""
    served = served_response(op)
    if served == response_fixture(op):
        return fixture_json(op.method.output_type.full_name)
    return json_format.MessageToDict(served)


def token(*scopes: str) -> str:
    return issue_token(SECRET, "test:caller", scopes)


def auth_headers(op: Op) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*op.scopes)}"}


def _leaf_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def url_path(op: Op, request: message.Message) -> str:
    """The op's path with each variable filled from `request` (`:` left as is)."""

    def fill(match: re.Match[str]) -> str:
        holder: Any = request
        *parents, name = match.group(1).split(".")
        for parent in parents:
            holder = getattr(holder, parent)
        return quote(_leaf_text(getattr(holder, name)), safe=":")

    return _VARIABLE.sub(fill, op.path)


def query_params(op: Op, request: message.Message) -> tuple[tuple[str, str], ...]:
    """Every field of `request` not bound to the path, as HTTP.md names query parameters.

    Written apart from the generated client, from the JSON mapping: nested names are joined
    with dots, repeated fields repeat the parameter.
    """
    mapped = json_format.MessageToDict(request)
    for dotted in op.path_fields:
        holder = mapped
        json_names = _json_names(request.DESCRIPTOR, dotted)
        for key in json_names[:-1]:
            holder = holder.get(key, {})
        holder.pop(json_names[-1], None)
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, list):
            for item in value:
                walk(prefix, item)
        else:
            pairs.append((prefix, _leaf_text(value)))

    walk("", mapped)
    return tuple(pairs)


def _json_names(desc: Any, dotted: str) -> list[str]:
    names = []
    for part in dotted.split("."):
        field = desc.fields_by_name[part]
        names.append(field.json_name)
        desc = field.message_type
    return names
