"""The error responses of the OpenAPI documents, from the error-code catalogue.

Every error is one `qmtl.common.v1.ErrorDetail` (docs/api/HTTP.md). Which codes come with which
HTTP status is read from the `(qmtl.api.v1.error_info)` option of the catalogue's enum values,
so a new code shows up in the documents without touching this module. Each status an operation
can answer gets a reusable entry under `components.responses`; statuses that no rule assigns
to an operation (412, 504, ...) are documented once, as the `default` response. An rpc that
names a code in its comment, or in a comment of its request's fields (`E_DUPLICATE`), documents
that code's status when it is one of REASONS (409 for E_DUPLICATE, E_INVALID_STATE, ...).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

from qmtl_codegen import options
from qmtl_codegen.descriptors import Schema
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
