"""Each listener refuses exactly what the OpenAPI document it serves says is invalid.

The checks are derived from the document, not written per route: for every operation of the
document an app serves at /openapi.json, and every constraint the document states on a query
parameter, a path parameter or a JSON body field (enum names and numbers, integer ranges,
64-bit integers as range-limited decimal strings, `minLength` of REQUIRED strings, closed
objects, one spelling per field, `null` for fields that are not REQUIRED, whether a body is
required), a value just inside the constraint is not refused and a value just outside is
refused with 400 or 422 (404 for an empty path segment, which no route matches). Requests
start from the golden request fixture and change one value at a time; body fields are
checked once per schema property, so a large DAG costs no more than a small one.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.http.conftest import ServiceApps, build_apps
from tests.http.surface import (
    OPERATIONS,
    Op,
    auth_headers,
    body_json,
    ids,
    query_params,
    request_fixture,
    url_path,
)

JSON = "application/json"
REFUSED = {400, 422}
# Bounds of the formats the documents use for integers, as JSON Schema cannot bound a string.
FORMAT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
NOT_A_NAME = "NOT_A_VALUE_OF_THIS_ENUM"
UNKNOWN_FIELD = "noSuchFieldAnywhere"
NO_BODY = "(no body)"


@dataclass(frozen=True)
class Case:
    """One value for one place of the request, and whether the document allows it."""

    where: str
    value: Any
    valid: bool


class Document:
    """An OpenAPI document with local `$ref`s resolved, sibling keywords merged in."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def pointer(self, ref: str) -> dict[str, Any]:
        assert ref.startswith("#/"), ref
        node: Any = self.raw
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        found: dict[str, Any] = node
        return found

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The schema with `$ref`s merged in; `anyOf: [X, {type: null}]` becomes X plus
        `nullable: True` (the documents' spelling of a field that may be null)."""
        merged = dict(schema)
        while "$ref" in merged:
            target = self.pointer(merged.pop("$ref"))
            merged = {**target, **merged}
        branches = merged.get("anyOf", [])
        if len(branches) == 2 and branches[1] == {"type": "null"}:
            del merged["anyOf"]
            return {**self.resolve(branches[0]), **merged, "nullable": True}
        return merged

    def operation(self, op: Op) -> dict[str, Any]:
        path = re.sub(r"\{([^{}=]+)(?:=[^{}]*)?\}", r"{\1}", op.path)
        found: dict[str, Any] = self.raw["paths"][path][op.verb.lower()]
        return found


def value_cases(doc: Document, schema: dict[str, Any], where: str, text: bool) -> Iterator[Case]:
    """Values just inside and just outside each constraint of a (resolved) schema.

    `text` means the value travels as text (a query or path parameter), so numbers are
    written as their decimal digits.
    """
    schema = doc.resolve(schema)
    if schema.get("nullable") and not text:
        yield Case(where, None, True)

    def spell(value: Any) -> Any:
        return str(value) if text else value

    if "enum" in schema:
        names = [v for v in schema["enum"] if isinstance(v, str)]
        numbers = [v for v in schema["enum"] if isinstance(v, int)]
        assert names, f"{where}: an enum without value names"
        yield from (Case(where, name, True) for name in (names[0], names[-1]))
        yield Case(where, NOT_A_NAME, False)
        if numbers:
            yield from (Case(where, spell(n), True) for n in (min(numbers), max(numbers)))
            yield Case(where, spell(max(numbers) + 1), False)
        return
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "integer" and "minimum" in schema and "maximum" in schema:
        low, high = schema["minimum"], schema["maximum"]
        if fmt in FORMAT_RANGES:
            assert (low, high) == FORMAT_RANGES[fmt], f"{where}: {fmt} range"
        yield from (Case(where, spell(v), True) for v in (low, high))
        yield from (Case(where, spell(v), False) for v in (low - 1, high + 1))
        return
    if kind == "string" and fmt in ("int64", "uint64"):
        low, high = FORMAT_RANGES[fmt]
        pattern = re.compile(schema["pattern"])
        for number, inside in ((low, True), (high, True), (low - 1, False), (high + 1, False)):
            # The document's pattern states the range the format names.
            assert bool(pattern.search(str(number))) == inside, f"{where}: pattern at {number}"
            yield Case(where, str(number), inside)
        return
    if kind == "string" and schema.get("minLength") == 1:
        yield Case(where, "x", True)
        yield Case(where, "", False)


def body_cases(
    doc: Document, schema: dict[str, Any], instance: Any, where: str, seen: set[str]
) -> Iterator[Case]:
    """Cases for every value present in `instance` (a JSON body), once per schema property."""
    resolved = doc.resolve(schema)
    if isinstance(instance, dict) and "properties" in resolved:
        if resolved.get("additionalProperties") is False and where not in seen:
            seen.add(where)
            yield Case(f"{where}/{UNKNOWN_FIELD}", 1, False)
        for name, value in instance.items():
            key = f"{schema.get('$ref', where)}/{name}"
            if key in seen:
                continue
            seen.add(key)
            for alias, spelled in resolved["properties"].items():
                if spelled.get("$ref", "").endswith(f"/properties/{name}") and alias != name:
                    # The same field under its proto name as well: one spelling only.
                    yield Case(f"{where}/{alias}", value, False)
            inner = resolved["properties"][name]
            yield from value_cases(doc, inner, f"{where}/{name}", text=False)
            if isinstance(value, list) and value:
                items = doc.resolve(inner).get("items", {})
                yield from value_cases(doc, items, f"{where}/{name}/0", text=False)
                yield from body_cases(doc, items, value[0], f"{where}/{name}/0", seen)
            else:
                yield from body_cases(doc, inner, value, f"{where}/{name}", seen)


def set_at(instance: Any, where: str, value: Any) -> Any:
    changed = copy.deepcopy(instance)
    *parents, last = where.strip("/").split("/")
    node = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed


async def call_without_body(client: httpx.AsyncClient, op: Op) -> httpx.Response:
    """The op with no body and no Content-Type: the empty message in either encoding."""
    headers = {**auth_headers(op), "Accept": JSON}
    return await client.request(op.verb, url_path(op, request_fixture(op)), headers=headers)


async def call(
    client: httpx.AsyncClient,
    op: Op,
    *,
    path: str | None = None,
    params: list[tuple[str, str]] | None = None,
    body: Any = None,
) -> httpx.Response:
    request = request_fixture(op)
    headers = {**auth_headers(op), "Accept": JSON}
    url = path if path is not None else url_path(op, request)
    if op.body:
        headers["Content-Type"] = JSON
        return await client.request(op.verb, url, content=json.dumps(body), headers=headers)
    query = tuple(params) if params is not None else query_params(op, request)
    return await client.request(op.verb, url, params=query, headers=headers)


def parameter_requests(op: Op, operation: dict[str, Any], doc: Document) -> Iterator[Any]:
    """(case, keyword arguments of `call`) for every parameter constraint of an operation."""
    request = request_fixture(op)
    baseline = list(query_params(op, request))
    for parameter in operation.get("parameters", []):
        name, schema = parameter["name"], parameter["schema"]
        if doc.resolve(schema).get("type") == "array":
            schema = doc.resolve(schema)["items"]
        for case in value_cases(doc, schema, name, text=True):
            if parameter["in"] == "query":
                others = [(k, v) for k, v in baseline if k != name]
                yield case, {"params": [*others, (name, case.value)]}
            else:
                yield case, {"path": path_with(op, name, case.value)}
    if "parameters" in operation and not op.body:
        yield Case(UNKNOWN_FIELD, "1", False), {"params": [*baseline, (UNKNOWN_FIELD, "1")]}


def body_schema(operation: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = operation["requestBody"]["content"][JSON]["schema"]
    return found


def demands_a_field(schema: dict[str, Any]) -> bool:
    """Whether `{}` fails the object schema: a `required` list, or a REQUIRED field's
    `anyOf` of its two spellings."""
    either = [c for c in schema.get("allOf", []) if "anyOf" in c]
    return "required" in schema or any(all("required" in b for b in c["anyOf"]) for c in either)


def body_presence_requests(
    op: Op, operation: dict[str, Any], doc: Document
) -> Iterator[tuple[Case, dict[str, Any]]]:
    """An absent body, and each path parameter sent in the body as well.

    An absent body is the empty message, so the document's `requestBody.required` must say
    whether `{}` is valid: required exactly when the server refuses it (422). A path
    parameter the closed body schema does not list is one the server refuses in the body.
    """
    schema = doc.resolve(body_schema(operation))
    yield Case(NO_BODY, None, not operation["requestBody"]["required"]), {}
    assert demands_a_field(schema) == operation["requestBody"]["required"], (
        f"{op}: {{}} vs required"
    )
    if schema.get("additionalProperties") is not False:
        return
    body = body_json(op)
    request = request_fixture(op)
    for parameter in operation.get("parameters", []):
        if parameter["in"] != "path":
            continue
        name = parameter["name"]
        field = op.request_class.DESCRIPTOR.fields_by_name[name]
        value = getattr(request, name)
        for key in (field.json_name, field.name):
            yield (
                Case(f"/{key}", value, key in schema["properties"]),
                {"body": {**body, key: value}},
            )


def path_with(op: Op, field: str, value: str) -> str:
    """The op's URL path from its fixture, with the path field `field` set to `value`."""
    request = request_fixture(op)
    assert "." not in field, f"{op}: nested path fields are not exercised here"
    setattr(request, field, value)
    return url_path(op, request)


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_listener_refuses_exactly_what_its_document_says_is_invalid(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    doc = Document((await client.get("/openapi.json")).json())
    operation = doc.operation(op)
    checks: list[tuple[Case, dict[str, Any]]] = []
    if op.body:
        body = body_json(op)
        for case in body_cases(doc, body_schema(operation), body, "", set()):
            checks.append((case, {"body": set_at(body, case.where, case.value)}))
        checks.extend(body_presence_requests(op, operation, doc))
    else:
        checks.extend(parameter_requests(op, operation, doc))
    assert checks or not operation.get("parameters"), f"{op}: constraints but no checks"

    disagreements = []
    for case, arguments in checks:
        response = await (
            call_without_body(client, op)
            if case.where == NO_BODY
            else call(client, op, **arguments)
        )
        path_empty = "path" in arguments and case.value == ""
        refused = REFUSED | ({404} if path_empty else set())
        if case.valid and response.status_code != 200:
            disagreements.append(f"{case.where}={case.value!r} valid, got {response.text}")
        if not case.valid and response.status_code not in refused:
            disagreements.append(f"{case.where}={case.value!r} invalid, got {response.status_code}")
    assert not disagreements, f"{op}: " + "; ".join(disagreements)


def derived_cases(op: Op, doc: Document) -> list[Case]:
    operation = doc.operation(op)
    if op.body:
        cases = list(body_cases(doc, body_schema(operation), body_json(op), "", set()))
        return cases + [case for case, _ in body_presence_requests(op, operation, doc)]
    return [case for case, _ in parameter_requests(op, operation, doc)]


async def test_the_checks_cover_every_kind_of_constraint() -> None:
    """The derivation finds each kind of constraint the issue named somewhere in the documents."""
    kinds: set[str] = set()
    for op in OPERATIONS:
        apps = build_apps(op)
        transport = httpx.ASGITransport(app=apps.app_for(op))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            doc = Document((await http.get("/openapi.json")).json())
        for case in derived_cases(op, doc):
            if case.value is None and case.valid and case.where != NO_BODY:
                kinds.add("null for a field that is not REQUIRED")
            elif case.where == NO_BODY:
                kinds.add(f"absent body {'accepted' if case.valid else 'refused'}")
            elif case.where.strip("/") in op.path_fields and not case.valid:
                kinds.add("path field in the body")
            elif "_" in case.where.rsplit("/", 1)[-1] and not case.valid:
                kinds.add("both spellings of a field")
            elif case.where.endswith(UNKNOWN_FIELD):
                kinds.add("unknown field")
            elif case.value == NOT_A_NAME:
                kinds.add("enum name")
            elif case.value == "":
                kinds.add("empty required string")
            elif isinstance(case.value, str) and re.fullmatch(r"-?[0-9]{19,}", case.value):
                kinds.add("64-bit range")
            elif isinstance(case.value, int) and not case.valid and 0 < case.value < 100:
                kinds.add("undeclared enum number in a body")
    assert kinds == {
        "null for a field that is not REQUIRED",
        "both spellings of a field",
        "absent body accepted",
        "absent body refused",
        "path field in the body",
        "unknown field",
        "enum name",
        "empty required string",
        "64-bit range",
        "undeclared enum number in a body",
    }
