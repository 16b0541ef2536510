"""The error responses of the OpenAPI documents: exactly the codes each operation can answer.

Every error is one `qmtl.common.v1.ErrorDetail` (docs/api/HTTP.md). An operation documents two
kinds of codes, grouped by the HTTP status the catalogue (`(qmtl.api.v1.error_info)`) gives each:

- the codes its rpc declares with `(qmtl.api.v1.errors)`, the ones its handler raises on purpose;
- the transport's own codes, which the runtime answers for any rpc with the same traits
  (`TRANSPORT`): auth for authenticated rpcs, decoding and limits for rpcs with a body, the
  REQUIRED check for requests with REQUIRED fields, and for every rpc query parsing,
  negotiation, the deadline, E_INTERNAL and E_UNIMPLEMENTED.

Nothing else: no `default` response, so the list is the whole truth and a code an rpc answers
but does not declare is a bug in the rpc (tests/docs/test_openapi_errors.py checks the lists
against the option). Each status response is written inline, with one JSON example per code.
The older shared per-status entries (`statuses`, `ErrorResponses.component`) remain for
callers that still build `components.responses`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

from qmtl_codegen import options
from qmtl_codegen.descriptors import Schema, first_sentence
from qmtl_codegen.jsonmapping import JsonObject
from qmtl_codegen.plugin import GeneratorError

ERROR_DETAIL = "qmtl.common.v1.ErrorDetail"
DEFAULT = "default"

# Why a status is answered, as HTTP.md states it. Statuses listed here are assigned to
# operations by `statuses()`; codes with any other status fall under `default`.
REASONS: dict[int, str] = {
    400: "The request does not parse: an unknown query parameter or one whose value does not "
    "parse (`E_INVALID_ARGUMENT`, naming the parameter), a body that does not decode in its "
    "Content-Type (`E_MALFORMED_BODY`), a path that disagrees with the body, or a value the "
    "method rejects.",
    401: "No bearer service token, or one that does not verify or has expired.",
    403: "The token's principal lacks a scope the operation requires.",
    404: "The addressed resource does not exist, or no route matches the path.",
    406: "The `Accept` header allows neither `application/x-protobuf` nor `application/json`.",
    409: "The request conflicts with the current state: a duplicate, a resource in the wrong "
    "state, or an idempotency key already used with a different payload.",
    413: "The request body is larger than the server's limit (`E_PAYLOAD_TOO_LARGE`); "
    "docs/api/HTTP.md states the default.",
    415: "The body's `Content-Type` is neither `application/x-protobuf` nor `application/json`.",
    422: 'A field marked REQUIRED is missing, or has its default value ("", 0, empty) '
    "where it has no presence.",
    500: "An unexpected server error; the body never contains a traceback.",
    503: "A backend or peer service is unavailable; retry after the suggested delay.",
}
DEFAULT_REASON = "Any other error, with the status its code names."
RETRY_AFTER = {
    "description": "Seconds to wait before retrying, mirroring `ErrorDetail.retryAfter` "
    "(rounded up); sent only when the error suggests a wait.",
    "schema": {"type": "integer", "minimum": 0},
}
# As qmtl.runtime.auth.challenge writes it on every 401 (RFC 6750 section 3).
WWW_AUTHENTICATE = {
    "description": 'The bearer challenge: `Bearer realm="qmtl"`, with `error="invalid_token"` '
    'when a token was sent and refused, or `error="invalid_request"` when the Bearer header '
    "holds no usable token.",
    "schema": {"type": "string", "pattern": '^Bearer realm="qmtl"'},
}


@dataclass(frozen=True, slots=True)
class OperationTraits:
    """What decides an operation's error statuses."""

    authenticated: bool
    has_path_parameters: bool
    has_body: bool
    has_required_fields: bool
    # Statuses of the error codes the rpc's documentation names.
    named_statuses: frozenset[int] = field(default_factory=frozenset)


def statuses(traits: OperationTraits) -> list[int]:
    """The error statuses an operation documents, per the rules of docs/api/HTTP.md."""
    found = [400]
    if traits.authenticated:
        found += [401, 403]
    if traits.has_path_parameters:
        found.append(404)
    found.append(406)
    if traits.has_body:
        found += [413, 415]
    if traits.has_required_fields:
        found.append(422)
    found += [500, 503]
    found += [s for s in traits.named_statuses if s in REASONS and s not in found]
    return sorted(found)


def response_name(status: int | str) -> str:
    """The components.responses key of a status: 400 -> BadRequest, "default" -> Error."""
    if status == DEFAULT:
        return "Error"
    return "".join(ch for ch in HTTPStatus(int(status)).phrase.title() if ch.isalnum())


def catalogue(schema: Schema) -> dict[int, list[str]]:
    """Error codes (`E_...`) by HTTP status, from every enum value carrying error_info."""
    by_status: dict[int, list[str]] = {}
    for enum in schema.enums():
        for value in enum.values:
            info = options.error_info(schema.pool, value)
            if info is not None:
                by_status.setdefault(info.http_status, []).append(info.code)
    return dict(sorted(by_status.items()))


class ErrorResponses:
    """Builds the components.responses entries; `content` writes an ErrorDetail body."""

    def __init__(self, schema: Schema, content: JsonObject) -> None:
        try:
            schema.pool.FindMessageTypeByName(ERROR_DETAIL)  # type: ignore[no-untyped-call]
        except KeyError:
            raise GeneratorError(
                f"openapi: the error body {ERROR_DETAIL} is not in the schemas"
            ) from None
        self.codes = catalogue(schema)
        self.status_of = {code: status for status, codes in self.codes.items() for code in codes}
        self.content = content

    def statuses_named_in(self, texts: Iterable[str]) -> frozenset[int]:
        """The statuses of the catalogue's codes that `texts` name (`E_DUPLICATE` -> 409)."""
        named = {code for text in texts for code in _CODE.findall(text)}
        return frozenset(self.status_of[code] for code in named if code in self.status_of)

    def reference(self, status: int | str) -> JsonObject:
        return {"$ref": f"#/components/responses/{response_name(status)}"}

    def component(self, status: int | str) -> JsonObject:
        if status == DEFAULT:
            other = {s: c for s, c in self.codes.items() if s not in REASONS and s != 405}
            codes = [f"{s} {_codes(c)}" for s, c in other.items()]
            text = DEFAULT_REASON + (f" Known: {'; '.join(codes)}." if codes else "")
        else:
            known = self.codes.get(int(status), [])
            text = REASONS[int(status)]
            if known:
                text += f" Codes the catalogue serves with this status: {_codes(known)}."
        response: JsonObject = {"description": text}
        if status in (503, DEFAULT):
            response["headers"] = {"Retry-After": dict(RETRY_AFTER)}
        if status == 401:
            response["headers"] = {"WWW-Authenticate": copy.deepcopy(WWW_AUTHENTICATE)}
        response["content"] = copy.deepcopy(self.content)
        return response


_CODE = re.compile(r"\bE_[A-Z0-9_]+\b")


def _codes(codes: list[str]) -> str:
    return ", ".join(f"`{code}`" for code in codes)


# --- exact per-operation lists --------------------------------------------------------------

ERROR_CODE_ENUM = "qmtl.common.v1.ErrorCode"
JSON_TYPE = "application/json"
PROTOBUF_TYPE = "application/x-protobuf"

# The transport's own codes, by the trait that makes the runtime answer them (HTTP.md).
# Every rpc: an unknown or unparsable query parameter, an unacceptable `Accept`, a deadline
# (`qmtl-timeout-ms`, or the gRPC deadline) that passes, an unexpected failure, and a method
# the service left to the generated base class.
ALWAYS = ("E_INVALID_ARGUMENT", "E_NOT_ACCEPTABLE", "E_INTERNAL", "E_UNIMPLEMENTED", "E_TIMEOUT")
AUTHENTICATED = ("E_UNAUTHENTICATED", "E_PERMISSION_DENIED")
WITH_BODY = ("E_MALFORMED_BODY", "E_UNSUPPORTED_MEDIA_TYPE", "E_PAYLOAD_TOO_LARGE")
WITH_REQUIRED = ("E_VALIDATION",)


def transport_codes(*, authenticated: bool, has_body: bool, has_required: bool) -> tuple[str, ...]:
    """The codes the runtime itself answers for an operation with these traits."""
    found = list(ALWAYS)
    if authenticated:
        found += AUTHENTICATED
    if has_body:
        found += WITH_BODY
    if has_required:
        found += WITH_REQUIRED
    return tuple(found)


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """One catalogue entry, as the documents show it."""

    code: str
    http_status: int
    retryable: bool
    # The first sentence of the enum value's comment.
    summary: str


class ErrorCatalogue:
    """The catalogue's codes, and the inline error responses of one operation."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        try:
            enum = schema.pool.FindEnumTypeByName(ERROR_CODE_ENUM)  # type: ignore[no-untyped-call]
        except KeyError:
            raise GeneratorError(
                f"openapi: the catalogue {ERROR_CODE_ENUM} is not in the schemas"
            ) from None
        self.codes: dict[str, CodeInfo] = {}
        for value in enum.values:
            info = options.error_info(schema.pool, value)
            if info is not None:
                comment = schema.comment(f"{enum.full_name}.{value.name}")
                self.codes[info.code] = CodeInfo(
                    info.code, info.http_status, info.retryable, first_sentence(comment)
                )

    def responses(self, codes: Iterable[str], error_schema: JsonObject) -> dict[str, JsonObject]:
        """One inline response per status, listing exactly `codes` (catalogue order kept)."""
        by_status: dict[int, list[CodeInfo]] = {}
        for code in dict.fromkeys(codes):
            info = self.codes[code]
            by_status.setdefault(info.http_status, []).append(info)
        return {
            str(status): self._response(status, infos, error_schema)
            for status, infos in sorted(by_status.items())
        }

    def _response(self, status: int, infos: list[CodeInfo], error_schema: JsonObject) -> JsonObject:
        lines = [f"- `{info.code}`: {info.summary}" for info in infos]
        response: JsonObject = {"description": "\n".join(lines)}
        headers: JsonObject = {}
        if status == 401:
            headers["WWW-Authenticate"] = copy.deepcopy(WWW_AUTHENTICATE)
        if any(info.retryable for info in infos):
            headers["Retry-After"] = dict(RETRY_AFTER)
        if headers:
            response["headers"] = headers
        examples = {info.code: {"summary": info.code, "value": _example(info)} for info in infos}
        response["content"] = {
            JSON_TYPE: {"schema": copy.deepcopy(error_schema), "examples": examples},
            PROTOBUF_TYPE: {
                "schema": {
                    "type": "string",
                    "contentMediaType": PROTOBUF_TYPE,
                    "description": f"Binary protobuf encoding of `{ERROR_DETAIL}`.",
                    "x-protobuf-message": ERROR_DETAIL,
                }
            },
        }
        response["x-qmtl-error-codes"] = [info.code for info in infos]
        return response


def _example(info: CodeInfo) -> JsonObject:
    """An ErrorDetail as the runtime writes it (proto3 JSON: defaults left out)."""
    value: JsonObject = {"code": info.code, "message": _HTTP_NOTE.sub("", info.summary)}
    if info.retryable:
        value.update(retryable=True, retryAfter="1s")
    return value


# "(HTTP 503, retryable)" in a catalogue comment is for the reader of the schema, not the wire.
_HTTP_NOTE = re.compile(r"\s*\(HTTP [^)]*\)")
