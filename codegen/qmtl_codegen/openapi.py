"""OpenAPI 3.1 documents of the services' HTTP surface, from the schemas alone.

Each package with HTTP operations is a service area, named by the package component before
its version (`qmtl.gateway.v1` -> `gateway`). Per area:

    <area>.public.openapi.json     the public listener: the PUBLIC_READ rpcs, all GET
    <area>.internal.openapi.json   the internal listener: the INTERNAL rpcs

plus `public.openapi.json`, every area's public operations in one document. Run with
`strategy: all`, so that one request sees every service and every type they reach.

    opt: [version=0.1.0]            # info.version
    opt: [version_file=schemas/VERSION]  # info.version: the contracts version in that file
    opt: [layout=docs]              # the files above at the root of `out` (default)
    opt: [layout=package]           # qmtl/<area>/v1/openapi/<area>.<audience>.openapi.json
                                    # next to the generated messages, for importlib.resources

Schemas are under components.schemas keyed by full proto name and follow
qmtl_codegen.jsonmapping, shared with the per-message JSON Schemas, in its SERVER style: the
documents describe what the server accepts (closed objects, enum numbers). Public documents
leave out the fields marked `(qmtl.api.v1.internal_only)`, which public routes never send.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import contracts_version
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.jsonmapping import (
    PUBLIC_SERVER,
    SERVER,
    JsonMapping,
    JsonObject,
    NamedType,
    Style,
    dump,
    named_types,
)
from qmtl_codegen.openapi_errors import ERROR_DETAIL, ErrorCatalogue, ErrorResponses
from qmtl_codegen.openapi_finish import finish
from qmtl_codegen.openapi_operations import (
    SECURITY_SCHEME,
    VERBS,
    Operation,
    OperationBuilder,
    content,
    operations,
)
from qmtl_codegen.plugin import GeneratorError, OutputFile, header_line, parse_options, run

OPENAPI_VERSION = "3.1.0"
SCHEMA_REF = "#/components/schemas/"
MERGED_PUBLIC = "public.openapi.json"
LAYOUTS = ("docs", "package")

GENERATED = (
    "Generated from the protobuf schemas by qmtl-codegen; do not edit. The rules every route "
    "follows are in docs/api/HTTP.md."
)
ENCODINGS = (
    "Every operation serves `application/json` (the proto3 JSON mapping: 64-bit integers as "
    'strings, bytes as base64, enums by name, Timestamp as RFC 3339, Duration as `"1.5s"`) and '
    "`application/x-protobuf`. The response follows `Accept` (406 when nothing is acceptable); "
    "when `Accept` is absent or `*/*`, the public listener answers JSON and the internal one "
    "protobuf. A request body follows `Content-Type` (415 otherwise)."
)
ERRORS = (
    "Every error is one `qmtl.common.v1.ErrorDetail` in the negotiated encoding (JSON when "
    "`Accept` cannot be satisfied), with the HTTP status its `code` names. Each operation "
    "lists exactly the codes it can answer: those its rpc declares with "
    "`(qmtl.api.v1.errors)` (also in `x-qmtl-errors`) and the transport's own (auth, "
    "decoding, negotiation, limits, the deadline, `E_INTERNAL`, `E_UNIMPLEMENTED`); each "
    "response names its codes in `x-qmtl-error-codes`."
)
CURL = (
    "Examples are the golden fixtures (`tests/golden/fixtures/`). The curl samples read the "
    "listener's base URL from `$QMTL_PUBLIC_URL` or `$QMTL_INTERNAL_URL` and a bearer service "
    "token from `$QMTL_TOKEN`."
)
AUTHENTICATION = (
    "Authenticated operations take `Authorization: Bearer <token>` and need every scope listed "
    "in their `x-qmtl-required-scopes` (401 without a valid token, 403 without the scopes). "
    "Operations without `security` need no token."
)
PUBLIC_ROUTING = (
    "Public listener: read-only operations, all HTTP GET. Any other method (but HEAD) on a "
    "public path answers 405 `E_METHOD_NOT_ALLOWED` with an ErrorDetail body and an "
    "`Allow: GET, HEAD` header; a path that no route matches answers 404."
)
INTERNAL_ROUTING = (
    "Internal listener: writes, submissions and admin operations. The public app never routes "
    "them; every one needs a bearer service token."
)
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "qmtl-service-token",
    "description": 'A QMTL service token: `base64url(qmtl.api.v1.ServiceToken) "." '
    "base64url(HMAC-SHA256(secret, claims))`. The default verifier checks the MAC and "
    "`expires_at`.",
}
_VERSION_COMPONENT = re.compile(r"v[0-9]+[a-z0-9]*")


def area_of(package: str) -> str:
    """`qmtl.gateway.v1` -> `gateway`: the package component before its version."""
    parts = package.split(".")
    if len(parts) > 1 and _VERSION_COMPONENT.fullmatch(parts[-1]):
        return parts[-2]
    return parts[-1]


class DocumentWriter:
    """Assembles OpenAPI documents from operations; components hold only what they use.

    An operation object and a definition depend only on the operation (or type) and the
    Style, so each is built once and shared by every document that lists it: an area's
    public document and the merged public one hold the same objects. Nothing changes them
    once built.
    """

    def __init__(self, schema: Schema, version: str) -> None:
        self.schema = schema
        self.version = version
        error_content = content(ERROR_DETAIL, {"$ref": SCHEMA_REF + ERROR_DETAIL})
        self.errors = ErrorResponses(schema, error_content)
        self.catalogue = ErrorCatalogue(schema)
        self._mappings: dict[Style, JsonMapping] = {}
        # (rpc, binding index, style) -> the finished operation object and the schemas it uses
        self._operations: dict[tuple[str, int, Style], tuple[JsonObject, frozenset[str]]] = {}
        self._definitions: dict[tuple[Style, str], JsonObject] = {}

    def mapping(self, style: Style) -> JsonMapping:
        if style not in self._mappings:
            self._mappings[style] = JsonMapping(self.schema, lambda name: SCHEMA_REF + name, style)
        return self._mappings[style]

    def operation(self, op: Operation, style: Style) -> tuple[JsonObject, frozenset[str]]:
        """The finished operation object of `op` and the names of the schemas it refers to."""
        key = (op.method.full_name, op.binding.index, style)
        if key not in self._operations:
            mapping = self.mapping(style)
            # Error responses are rewritten inline per operation by `finish`, so the shared
            # per-status entries the builder refers to are not kept.
            result, _ = OperationBuilder(self.schema, mapping, self.errors).operation(op)
            finish(op, result, mapping, self.catalogue, public_listener=op.access.is_public)
            self._operations[key] = (result, frozenset(_schema_refs(result)))
        return self._operations[key]

    def document(self, title: str, intro: str, ops: list[Operation], style: Style) -> JsonObject:
        paths: dict[str, JsonObject] = {}
        used: set[str] = set()
        for op in sorted(ops, key=lambda o: (o.path, VERBS.index(o.verb))):
            item = paths.setdefault(op.path, {})
            if op.verb in item:
                raise GeneratorError(
                    f"{op.verb.upper()} {op.path} is bound by both "
                    f"{item[op.verb]['operationId']} and {op.operation_id}"
                )
            item[op.verb], refs = self.operation(op, style)
            used |= refs
        components: JsonObject = {"schemas": self.definitions(style, used)}
        if any(op.authenticated for op in ops):
            components["securitySchemes"] = {SECURITY_SCHEME: dict(BEARER)}
        sources = sorted({op.service.file.name for op in ops})
        description = [intro, ENCODINGS, ERRORS, AUTHENTICATION, CURL, GENERATED]
        return {
            "openapi": OPENAPI_VERSION,
            "x-qmtl-generated": header_line("openapi", ", ".join(sources) or "no services"),
            "info": {
                "title": title,
                "version": self.version,
                "description": "\n\n".join(description),
            },
            "tags": self.tags(ops),
            "paths": paths,
            "components": components,
        }

    def tags(self, ops: list[Operation]) -> list[JsonObject]:
        services = {op.service.full_name: op.service for op in ops}
        tags = []
        for service in services.values():
            tag: JsonObject = {"name": service.name}
            comment = self.schema.comment(service.full_name)
            if comment:
                tag["description"] = comment
            tags.append(tag)
        return tags

    def definitions(self, style: Style, used: set[str]) -> JsonObject:
        """The schemas named in `used` and everything those reach, by full name."""
        mapping = self.mapping(style)
        roots = [self.named(name) for name in sorted(used)]
        found = named_types(roots, mapping.visible)
        return {name: self.definition(style, t) for name, t in found.items()}

    def definition(self, style: Style, named: NamedType) -> JsonObject:
        key = (style, named.full_name)
        if key not in self._definitions:
            self._definitions[key] = self.mapping(style).definition(named)
        return self._definitions[key]

    def named(self, full_name: str) -> NamedType:
        pool = self.schema.pool
        try:
            found: NamedType = pool.FindMessageTypeByName(full_name)  # type: ignore[no-untyped-call]
        except KeyError:
            found = pool.FindEnumTypeByName(full_name)  # type: ignore[no-untyped-call]
        return found


def _schema_refs(node: Any) -> set[str]:
    """Names of every `#/components/schemas/<name>` reference in a JSON tree."""
    found: set[str] = set()
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(SCHEMA_REF):
                # `<name>/properties/<field>` (a proto-name alias) needs the schema `<name>`.
                found.add(ref.removeprefix(SCHEMA_REF).split("/", 1)[0])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


@dataclass(frozen=True, slots=True)
class AreaDocument:
    """One area's document for one audience, as text."""

    package: str
    name: str  # `<area>.<audience>.openapi.json`
    text: str


def documents(schema: Schema, version: str, layout: str) -> Iterator[OutputFile]:
    """The documents of every area, and with layout `docs` the merged public one.

    The layouts differ only in file names, so the documents are written once per schema and
    version, however many generators of a bundle ask for them.
    """
    areas, merged = schema.derived(("openapi", version), lambda: _texts(schema, version))
    for area in areas:
        if layout == "package":
            yield OutputFile(f"{area.package.replace('.', '/')}/openapi/{area.name}", area.text)
        else:
            yield OutputFile(area.name, area.text)
    if layout == "docs":
        yield OutputFile(MERGED_PUBLIC, merged())


def _texts(schema: Schema, version: str) -> tuple[list[AreaDocument], Callable[[], str]]:
    """Every area's documents, and the merged public document (written when first asked for)."""
    writer = DocumentWriter(schema, version)
    everything = operations(schema)
    by_package: dict[str, list[Operation]] = {}
    for op in everything:
        by_package.setdefault(op.service.file.package, []).append(op)
    areas: dict[str, str] = {}
    found: list[AreaDocument] = []
    for package, ops in sorted(by_package.items()):
        area = area_of(package)
        if area in areas:
            raise GeneratorError(f"openapi: packages {areas[area]} and {package} share area {area}")
        areas[area] = package
        services = ", ".join(dict.fromkeys(op.service.name for op in ops))
        for audience, intro, subset, style in (
            ("public", PUBLIC_ROUTING, [op for op in ops if op.access.is_public], PUBLIC_SERVER),
            ("internal", INTERNAL_ROUTING, [op for op in ops if not op.access.is_public], SERVER),
        ):
            title = f"QMTL {area} {audience} API ({services})"
            text = dump(writer.document(title, intro, subset, style))
            found.append(AreaDocument(package, f"{area}.{audience}.openapi.json", text))

    @functools.cache
    def merged() -> str:
        public = [op for op in everything if op.access.is_public]
        return dump(writer.document("QMTL public API", PUBLIC_ROUTING, public, PUBLIC_SERVER))

    return found, merged


@dataclass(frozen=True, slots=True)
class OpenApiOptions:
    version: str = ""
    version_file: str = ""
    layout: str = "docs"


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    opts = parse_options("openapi", request.parameter, OpenApiOptions)
    layout = opts.layout or "docs"
    if layout not in LAYOUTS:
        raise GeneratorError(f"openapi: layout must be one of {', '.join(LAYOUTS)}, not {layout}")
    if opts.version and opts.version_file:
        raise GeneratorError("openapi: give version or version_file, not both")
    version = contracts_version.current(opts.version_file) if opts.version_file else opts.version
    yield from documents(Schema.from_request(request), version or "0.1.0", layout)


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
