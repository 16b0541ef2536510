"""What the HTTP endpoints call, and the two apps they are mounted in.

Endpoints (http/endpoint.py, one per generated route, built at startup) are raw ASGI apps
added as Starlette routes, not FastAPI path operations: FastAPI would solve dependencies and
validate with Pydantic on every request, while the generator already knows every type. They
call the helpers here for the parts that are the same for every route: reading the headers in
one pass, building the request message from a static `Binding`, encoding the reply and turning
any exception into an ErrorDetail response (qmtl.runtime.error_mapping says how).

The public app and the internal app are separate FastAPI apps (QmtlApp, which hands plain
routes their requests without FastAPI's middleware layers), served on separate listeners, so
the public one cannot route an internal operation whatever its paths look like.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Generic, NamedTuple, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from google.protobuf import message
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

from qmtl.runtime import codec, contracts_version, error_mapping
from qmtl.runtime.errors import ErrorCode, QmtlError, known_codes
from qmtl.runtime.http.declared_enums import check_declared
from qmtl.runtime.http.docs_page import docs_routes
from qmtl.runtime.http.limits import (
    DEFAULT_MAX_BODY_BYTES,
    declared_too_large,
    limit_body,
    resolve_max_body_bytes,
)
from qmtl.runtime.http.params import (
    Check,
    Param,
    QueryParams,
    Required,
    parse_path_into,
    required_check,
)
from qmtl.runtime.http.path_body import refuse_path_fields
from qmtl.runtime.http.segments import encoded_slash_error

M = TypeVar("M", bound=message.Message)

OPENAPI_PATH = "/openapi.json"
BODY_NONE, BODY_ALL = "", "*"


class RequestHeaders(NamedTuple):
    accept: str | None
    authorization: str | None
    content_type: str | None
    timeout: str | None  # qmtl-timeout-ms: the caller's deadline
    contracts: str | None  # qmtl-contracts-version: the caller's (contracts_version.py)


_WANTED = {
    b"accept": 0,
    b"authorization": 1,
    b"content-type": 2,
    b"qmtl-timeout-ms": 3,
    contracts_version.HEADER_BYTES: 4,
}


def request_headers(scope: Scope) -> RequestHeaders:
    """The headers an endpoint needs, in one pass over the raw header list.

    ASGI servers lower-case header names; a repeated header keeps its first value.
    """
    found: list[str | None] = [None, None, None, None, None]
    for name, value in scope["headers"]:
        index = _WANTED.get(name)
        if index is not None and found[index] is None:
            found[index] = value.decode("latin-1")
    return RequestHeaders._make(found)  # tuple.__new__ itself: no Python-level __new__ call


@dataclass(frozen=True, slots=True)
class Binding(Generic[M]):
    """How one route builds its request message, as the generator derived it from the rule.

    `path` holds the parameters bound to the path template, `query` those left for the query
    string, `body` is "" (no body), "*" (the whole request) or the name of the field the body
    fills, and `required` the fields marked REQUIRED (top-level ones, and on body-less routes
    nested ones whose every enclosing field is REQUIRED too).
    """

    request: type[M]
    path: Sequence[Param] = ()
    query: QueryParams = field(default_factory=lambda: QueryParams(()))
    body: str = BODY_NONE
    required: Sequence[Required] = ()
    check_required: Check = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "check_required", required_check(self.request, self.required))

    def from_parameters(self, path_params: Mapping[str, Any], query_string: bytes) -> M:
        """The request of a route without a body (GET): path, then query parameters."""
        msg = self.request()
        if self.path:
            parse_path_into(msg, self.path, path_params, body=False)
        self.query.parse_into(msg, query_string)
        if self.required:
            self.check_required(msg)
        return msg

    def from_body(
        self,
        path_params: Mapping[str, Any],
        query_string: bytes,
        body: bytes,
        content_type: str | None,
    ) -> M:
        """The request of a route with a body, decoded in the encoding `content_type` names."""
        if body or content_type is not None:
            encoding = codec.body_encoding(content_type)
        else:
            # An empty body without a Content-Type is the empty message in either encoding.
            encoding = codec.Encoding.PROTOBUF
        if self.body == BODY_ALL:
            msg = codec.decode(self.request, body, encoding)
            if self.path:
                # google.api.http: the body is every field the path does not bind.
                refuse_path_fields(msg, self.path, body, encoding)
        else:
            msg = self.request()
            target = getattr(msg, self.body)
            target.CopyFrom(codec.decode(type(target), body, encoding))
        # Requests only: a client decoding a newer server's reply must keep unknown numbers.
        check_declared(msg)
        if self.path:
            parse_path_into(msg, self.path, path_params, body=False)
        self.query.parse_into(msg, query_string)
        if self.required:
            self.check_required(msg)
        return msg


# The Content-Type value of each encoding, as the raw header bytes a response carries.
MEDIA_TYPES = {encoding: encoding.media_type.encode("latin-1") for encoding in codec.Encoding}


# Every answer of a generated route or of the app names the contracts version it speaks.
VERSION_HEADER = (contracts_version.HEADER_BYTES, contracts_version.SPOKEN_BYTES)


def error_response(
    exc: BaseException,
    accept: str | None,
    headers: Mapping[str, str] | None = None,
    *,
    authorization: str | None = None,
    default: codec.Encoding = codec.Encoding.PROTOBUF,
) -> Response:
    """`exc` as an ErrorDetail response; anything but a QmtlError is logged and becomes a 500.

    The body is in the negotiated encoding (`default` when Accept leaves it open), JSON when
    `Accept` allows neither. A 401 carries the `WWW-Authenticate` challenge that
    `authorization`, the request's header, calls for (error_mapping.to_http).
    """
    answer = error_mapping.to_http(
        exc, accept, authorization=authorization, headers=headers, default=default
    )
    answer.headers[contracts_version.HEADER] = contracts_version.SPOKEN
    return Response(
        answer.body,
        status_code=answer.status,
        headers=answer.headers,
        media_type=answer.media_type,
    )


# -- the apps ----------------------------------------------------------------------------------


def _code_for_status(status: int) -> QmtlError:
    # Starlette raises HTTPException for routing outcomes (404, 405) and little else.
    if status == 404:
        return QmtlError.not_found("no route matches this path")
    if status == 405:
        return QmtlError(ErrorCode.ERROR_CODE_METHOD_NOT_ALLOWED, "method not allowed here")
    matches = [info for info in known_codes() if info.http_status == status]
    if len(matches) == 1:
        return QmtlError(matches[0].code, f"HTTP {status}")
    fallback = ErrorCode.ERROR_CODE_INTERNAL if status >= 500 else ErrorCode.ERROR_CODE_VALIDATION
    return QmtlError(fallback, f"HTTP {status}", http_status=status)


async def _routing_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if "Allow" in headers:
        # Starlette joins a set, so the order would change from run to run.
        headers["Allow"] = ", ".join(sorted(m.strip() for m in headers["Allow"].split(",")))
    return error_response(
        _code_for_status(exc.status_code),
        request.headers.get("accept"),
        headers,
        default=_default_encoding(request.scope),
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Endpoints catch their own errors; this is the backstop for anything outside them.
    accept = request.headers.get("accept")
    return error_response(exc, accept, default=_default_encoding(request.scope))


def _default_encoding(scope: Scope) -> codec.Encoding:
    app = scope.get("app")
    return app.default_encoding if isinstance(app, QmtlApp) else codec.Encoding.PROTOBUF


def load_document(package: str, resource: str) -> bytes:
    """A generated OpenAPI document shipped inside a generated package.

    Raises FileNotFoundError naming it: an app must not start without its contract.
    """
    document = resources.files(package).joinpath(resource)
    if not document.is_file():
        raise FileNotFoundError(
            f"OpenAPI document {resource} is missing from {package}: run `make generate`"
        )
    return document.read_bytes()


def _document_route(document: bytes) -> Route:
    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    return Route(OPENAPI_PATH, openapi, methods=["GET"], name="openapi")


# FastAPI's native OpenTelemetry asks the global providers on every request whether it is
# configured (environment lookups included), which costs a generated route a tenth of its
# time; it is off unless a service passes its own configuration.
TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class QmtlApp(FastAPI):
    """A FastAPI app that sends requests for its plain routes straight to the route.

    FastAPI's middleware stack (error, telemetry, body-limit, exception and exit-stack layers)
    and its router loop cost a generated GET more time than the endpoint itself. The routes
    are registered in the router as usual (introspection, url_for, 404/405 all unchanged), and
    a request whose path and method a plain Route matches in full is handed to that route
    directly, choosing the same route the router would. Generated endpoints turn every
    exception into an error response themselves, so they need none of the skipped layers.

    The short path is not taken once the app has user middleware (it must see every request)
    or a root path, and never for FastAPI path operations (APIRoute), which rely on the stack.

    Before either path, every HTTP request passes two edge checks (docs/operations/http.md):
    the body limit (limits.py: a declared Content-Length over it is a 413 at once, a streamed
    body is counted as it is read) and the raw path (segments.py: an encoded `/` never lets
    a parameter span segments).
    """

    _fast_static: dict[str, Route]
    _fast_dynamic: tuple[Route, ...]

    def freeze_routes(self) -> None:
        """Indexes the plain routes registered so far for the short path."""
        static: dict[str, Route] = {}
        dynamic: list[Route] = []
        earlier: list[Route] = []
        for route in self.router.routes:
            if not isinstance(route, Route) or isinstance(route, APIRoute):
                break  # routes after one we do not index could be shadowed by it
            if route.param_convertors or any(r.path_regex.match(route.path) for r in earlier):
                dynamic.append(route)
            else:
                static[route.path] = route
            earlier.append(route)
        self._fast_static, self._fast_dynamic = static, tuple(dynamic)

    def _short_route(self, scope: Scope) -> Route | None:
        """The plain route to hand `scope` to directly; None to take the regular stack."""
        if scope["type"] != "http" or self.user_middleware or self.root_path:
            return None
        if scope.get("root_path"):
            return None
        route = self._fast_static.get(scope["path"])
        if route is not None:
            return route if scope["method"] in (route.methods or ()) else None
        for candidate in self._fast_dynamic:
            match, child_scope = candidate.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                return candidate
            if match is Match.PARTIAL:
                return None  # 405 and its error body come from the regular stack
        return None

    # The body limit in bytes (docs/operations/http.md); create_app sets it.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # The encoding of answers whose request's Accept leaves it open: JSON on the public
    # listener, protobuf on the internal one (create_public_app / create_internal_app).
    default_encoding: codec.Encoding = codec.Encoding.PROTOBUF
    # JSON replies write default-valued fields too (docs/operations/serving.md); create_app sets it.
    json_emit_defaults: bool = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # Both checks come before routing, so they hold on the short path and the
            # regular stack alike.
            refused = declared_too_large(scope, self.max_body_bytes) or encoded_slash_error(
                scope, self.router.routes
            )
            if refused is not None:
                response = error_response(
                    refused, request_headers(scope).accept, default=self.default_encoding
                )
                await response(scope, receive, send)
                return
            receive = limit_body(scope, receive, self.max_body_bytes)
        route = self._short_route(scope)
        if route is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        try:
            await route.app(scope, receive, send)
        except QmtlError as exc:
            # Generated endpoints answer the body limit's 413 themselves; a plain route that
            # lets it out gets the same answer rather than a dropped connection.
            if exc.code != ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE:
                raise
            answer = error_response(
                exc, request_headers(scope).accept, default=self.default_encoding
            )
            await answer(scope, receive, send)


def create_app(
    routes: Sequence[BaseRoute],
    *,
    openapi: bytes | None,
    title: str,
    telemetry: TelemetryConfig | None = None,
    max_body_bytes: int | None = None,
    json_emit_defaults: bool = False,
    default_encoding: codec.Encoding = codec.Encoding.PROTOBUF,
) -> QmtlApp:
    """A FastAPI app serving `routes` and, if given, the OpenAPI document at /openapi.json.

    With a document, the app also renders it at /docs (Redoc, bundled: docs_page.py).

    FastAPI's own OpenAPI and docs pages are off: the contract is the generated document.
    Unknown paths are 404 and other methods on a known path 405, both with an ErrorDetail
    body; no trailing-slash redirects, so a path either is in the contract or is a 404.
    Request bodies over `max_body_bytes` (default: QMTL_HTTP_MAX_BODY_BYTES, else 16 MiB)
    are refused with 413; HttpConfigError if the limit is not a positive whole number.
    """
    limit = resolve_max_body_bytes(max_body_bytes)
    app = QmtlApp(
        telemetry=TELEMETRY_OFF if telemetry is None else telemetry,
        title=title,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        exception_handlers={HTTPException: _routing_error, Exception: _unexpected},
    )
    if openapi is not None:
        app.router.routes.append(_document_route(openapi))
        app.router.routes.extend(docs_routes(title))
    app.router.routes.extend(routes)
    app.freeze_routes()
    app.max_body_bytes = limit
    app.default_encoding = default_encoding
    app.json_emit_defaults = json_emit_defaults
    return app


def create_public_app(
    routes: Sequence[BaseRoute],
    *,
    openapi: bytes | None,
    title: str = "QMTL public API",
    telemetry: TelemetryConfig | None = None,
    max_body_bytes: int | None = None,
    json_emit_defaults: bool = False,
) -> QmtlApp:
    """The public listener's app: GET routes only (HEAD follows GET); JSON by default."""
    for route in routes:
        methods = getattr(route, "methods", None) or set()
        if not set(methods) <= {"GET", "HEAD"}:
            raise ValueError(f"public routes are GET only, got {sorted(methods)} on {route}")
    return create_app(
        routes,
        openapi=openapi,
        title=title,
        telemetry=telemetry,
        max_body_bytes=max_body_bytes,
        json_emit_defaults=json_emit_defaults,
        default_encoding=codec.Encoding.JSON,
    )


def create_internal_app(
    routes: Sequence[BaseRoute],
    *,
    openapi: bytes | None,
    title: str = "QMTL internal API",
    telemetry: TelemetryConfig | None = None,
    max_body_bytes: int | None = None,
    json_emit_defaults: bool = False,
) -> QmtlApp:
    """The internal listener's app: writes and admin operations, never on the public port."""
    return create_app(
        routes,
        openapi=openapi,
        title=title,
        telemetry=telemetry,
        max_body_bytes=max_body_bytes,
        json_emit_defaults=json_emit_defaults,
    )
