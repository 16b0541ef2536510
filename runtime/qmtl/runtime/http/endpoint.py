"""The one HTTP endpoint every generated route is: auth, negotiation, decode, call, encode, error.

A generated `<file>_http.py` is data: per route an `HttpRoute` (the rpc's spec, how the request
message is bound from path, query and body, the verb, the Starlette path and the listener).
`routes` turns those into Starlette routes, building one endpoint closure per route at startup,
so a request runs no lookups beyond the ones a hand-written endpoint would make.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf.message import Message
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from qmtl.runtime import auth, codec, contracts_version, pipeline
from qmtl.runtime.context import Context
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.http.server import (
    BODY_NONE,
    MEDIA_TYPES,
    VERSION_HEADER,
    Binding,
    error_response,
    request_headers,
)
from qmtl.runtime.pipeline import Interceptor
from qmtl.runtime.redact import public_message
from qmtl.runtime.spec import RpcSpec

Listener = Literal["public", "internal"]

# The request header carrying the caller's deadline, in whole milliseconds from receipt
# (docs/api/HTTP.md); the typed clients send their per-call timeout in it.
TIMEOUT_HEADER = "qmtl-timeout-ms"
# At most 12 digits (about 31 years): anything longer is not a timeout but a mistake.
_MAX_TIMEOUT_DIGITS = 12

# What a listener answers when Accept leaves the encoding open: browsers and curl read the
# public one, services (protobuf clients) the internal one.
DEFAULT_ENCODING: Mapping[Listener, codec.Encoding] = {
    "public": codec.Encoding.JSON,
    "internal": codec.Encoding.PROTOBUF,
}


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """One route of an rpc: `rpc` served at `verb` `path` (Starlette syntax) on `listener`."""

    rpc: RpcSpec[Any, Any]
    binding: Binding[Any]
    verb: str
    path: str
    listener: Listener
    name: str


class _ScopeHeaders(Mapping[str, str]):
    """The request headers as `ctx.headers`, decoded only if a handler reads them."""

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._decoded: dict[str, str] | None = None

    def _headers(self) -> dict[str, str]:
        if self._decoded is None:
            decoded: dict[str, str] = {}
            for name, value in self._raw:
                # A repeated header keeps its first value, as request_headers does.
                decoded.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
            self._decoded = decoded
        return self._decoded

    def __getitem__(self, key: str) -> str:
        return self._headers()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers())

    def __len__(self) -> int:
        return len(self._headers())


def deadline(timeout_ms: str | None) -> float | None:
    """The monotonic deadline a `qmtl-timeout-ms` value sets; None without one.

    E_INVALID_ARGUMENT (400) unless it is a whole number of milliseconds (0 = already passed).
    """
    if timeout_ms is None:
        return None
    value = timeout_ms.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > _MAX_TIMEOUT_DIGITS:
        raise QmtlError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"header {TIMEOUT_HEADER} must be a whole number of milliseconds, at most "
            f"{_MAX_TIMEOUT_DIGITS} digits",
            details={"header": TIMEOUT_HEADER},
        )
    return time.monotonic() + int(value) / 1000


async def read_body(receive: Receive) -> bytes:
    """The whole request body (the app's body limit already wraps `receive`)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


_NO_PATH_PARAMS: Mapping[str, Any] = {}

# Module globals for the per-request branches: reading a member off the Enum class, or hashing
# one (Enum.__hash__ is Python code), costs several times a global read.
_JSON = codec.Encoding.JSON
_JSON_TYPE, _PROTOBUF_TYPE = MEDIA_TYPES[codec.Encoding.JSON], MEDIA_TYPES[codec.Encoding.PROTOBUF]


def _asgi_app(serve: ASGIApp) -> ASGIApp:
    """`serve` as an object Starlette's Route takes for a raw ASGI app.

    Route treats a plain function as a request/response endpoint (a Request built and an
    exception wrapper per request); the endpoint answers every exception itself and needs
    neither. A class of its own whose `__call__` is `serve` itself, rather than an object
    forwarding to it, saves a coroutine frame per request.
    """
    app_type = type("GeneratedEndpoint", (), {"__slots__": (), "__call__": staticmethod(serve)})
    app: ASGIApp = app_type()
    return app


def endpoint(route: HttpRoute, call: pipeline.Bound, verifier: auth.TokenVerifier) -> ASGIApp:
    """The ASGI app of one route, with every per-route decision taken now, not per request."""
    rpc = route.rpc
    binding = route.binding
    scopes, anonymous = rpc.access.scopes, rpc.access.allow_anonymous
    hidden = rpc.public_view if route.listener == "public" else None
    default = DEFAULT_ENCODING[route.listener]
    has_body = binding.body != BODY_NONE
    plain, bounded = call

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        headers = request_headers(scope)
        try:
            if headers.contracts is not None:
                # First: a peer of another major may not even authenticate the same way.
                contracts_version.admit(headers.contracts, "http")
            principal = await auth.authenticate(
                headers.authorization, verifier, scopes, allow_anonymous=anonymous
            )
            # Counted from here, before the body is read: the caller's clock started earlier.
            expires = None if headers.timeout is None else deadline(headers.timeout)
            encoding = codec.negotiate(headers.accept, default=default)
            if has_body:
                message: Message = binding.from_body(
                    scope.get("path_params", _NO_PATH_PARAMS),
                    scope["query_string"],
                    await read_body(receive),
                    headers.content_type,
                )
            else:
                message = binding.from_parameters(
                    scope.get("path_params", _NO_PATH_PARAMS), scope["query_string"]
                )
            ctx = Context(rpc, "http", principal, _ScopeHeaders(scope["headers"]), expires)
            reply = await (plain if expires is None else bounded)(message, ctx)
            if hidden is not None:
                reply = public_message(reply, hidden)
            if encoding is _JSON:
                # Per app (serve's json_emit_defaults); protobuf replies never look it up.
                emit = getattr(scope.get("app"), "json_emit_defaults", False)
                body = codec.encode(reply, encoding, emit_defaults=emit)
                content_type = _JSON_TYPE
            else:
                body = codec.encode(reply, encoding)
                content_type = _PROTOBUF_TYPE
            if ctx.status == 200 and not ctx.response_headers:
                # The usual answer, sent as the two ASGI messages a Response would send
                # without building one (its constructor inspects content and headers).
                start: AsgiMessage = {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-length", str(len(body)).encode("latin-1")),
                        (b"content-type", content_type),
                        VERSION_HEADER,
                    ],
                }
            else:
                response = Response(
                    body,
                    status_code=ctx.status,
                    headers=ctx.response_headers,
                    media_type=encoding.media_type,
                )
                response.raw_headers.append(VERSION_HEADER)
                start = {
                    "type": "http.response.start",
                    "status": ctx.status,
                    "headers": response.raw_headers,
                }
        except Exception as exc:
            answer = error_response(
                exc, headers.accept, authorization=headers.authorization, default=default
            )
            await answer(scope, receive, send)
            return
        # Outside the try: an error while sending is the server's to handle, as it would be
        # from a Response; answering it with an error body after the start went out cannot work.
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return _asgi_app(serve)


def routes(
    handler: object,
    verifier: auth.TokenVerifier,
    table: Sequence[HttpRoute],
    *,
    interceptors: Sequence[Interceptor] = (),
) -> list[BaseRoute]:
    """Starlette routes serving `table` with `handler`; every route runs `interceptors`.

    Each rpc is bound once (pipeline.bind), also when several routes serve it.
    """
    bound: dict[str, pipeline.Bound] = {}
    found: list[BaseRoute] = []
    for route in table:
        call = bound.get(route.rpc.full_name)
        if call is None:
            call = bound[route.rpc.full_name] = pipeline.bind_both(handler, route.rpc, interceptors)
        found.append(
            Route(
                route.path,
                endpoint(route, call, verifier),
                methods=[route.verb],
                name=route.name,
            )
        )
    return found
