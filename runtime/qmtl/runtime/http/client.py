"""The engine under the generated typed clients: one exchange per rpc over httpx.

A generated client method passes a static `Operation` (verb, path template, body rule, response
type, listener) and the request message; this module builds the URL, query and body by the
same rules the server reads them with (docs/api/HTTP.md), sends it, and returns the decoded
response or raises `QmtlClientError` carrying the ErrorDetail. Transport failures raise the
same exception (status 0), so callers handle one error type.

It imports httpx only, so a client does not pull in the server stack.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import httpx
from google.protobuf import descriptor, json_format, message

from qmtl.common.v1 import error_pb2
from qmtl.runtime import codec
from qmtl.runtime.errors import ErrorCode, QmtlClientError, QmtlError, error_info, known_codes

Req = TypeVar("Req", bound=message.Message)
Resp = TypeVar("Resp", bound=message.Message)

TokenSource = str | Callable[[], str] | None
Listener = str | httpx.Client | None
AsyncListener = str | httpx.AsyncClient | None

DEFAULT_TIMEOUT = 10.0
_VARIABLE = re.compile(r"\{([^{}=]+)(?:=([^{}]*))?\}")


@dataclass(frozen=True, slots=True)
class Operation(Generic[Req, Resp]):
    """One HTTP binding of an rpc, as the generated client sees it."""

    name: str  # full rpc name, e.g. qmtl.gateway.v1.GatewayService.GetStrategy
    method: str  # GET, POST, ...
    path: str  # google.api.http template, e.g. /v1/gateway/strategies/{strategy_id}
    body: str  # "" (none), "*" (whole request) or a field name
    response: type[Resp]
    internal: bool  # served on the internal listener, not the public one


def _field_path(msg: message.Message, dotted: str) -> tuple[message.Message, str]:
    *parents, last = dotted.split(".")
    for name in parents:
        msg = getattr(msg, name)
    return msg, last


def _format_value(field: descriptor.FieldDescriptor, value: Any) -> str:
    if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if field.enum_type is not None:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known is not None else str(value)
    if isinstance(value, message.Message):
        # Timestamp, Duration and FieldMask: the only messages a path can bind.
        return str(value.ToJsonString())  # type: ignore[attr-defined]
    if isinstance(value, bytes):
        return base64.urlsafe_b64encode(value).decode("ascii")
    return str(value)


class PathValueError(QmtlClientError, ValueError):
    """A field bound to the path holds a value no request can carry; raised before sending.

    Empty values, `/` in a single-segment (`*`) variable, and `.` or `..` as a segment: the
    server refuses each with 400 E_INVALID_ARGUMENT, so the client does not send them (and
    an older server, which would route `a/status` to another operation, never sees them).
    Status 0, code E_INVALID_ARGUMENT, `details.parameter` names the field as the server
    would (its JSON name, dotted when nested).
    """

    def __init__(self, parameter: str, field: str, reason: str) -> None:
        error = QmtlError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"path parameter {parameter!r} (field {field}) {reason}",
            details={"parameter": parameter},
        )
        super().__init__(error.to_proto(), 0)


_DOT_SEGMENTS = frozenset({".", ".."})


def _check_path_value(request: message.Message, dotted: str, text: str, spans: bool) -> None:
    if not text:
        reason = "is bound to the path and must not be empty"
    elif not spans and "/" in text:
        reason = f"must not contain '/' (got {text!r})"
    elif "." in text and _DOT_SEGMENTS.intersection(text.split("/")):
        reason = f"must not be a dot segment ('.' or '..', got {text!r})"
    else:
        return
    parameter = ".".join(_json_path(request.DESCRIPTOR, dotted))
    raise PathValueError(parameter, dotted, reason)


def build_path(template: str, request: message.Message) -> tuple[str, set[str]]:
    """The path with each `{field}` replaced by the request's value, and the fields bound.

    Values are percent-encoded except `:` (node ids read `blake3:<hex>`) and, for `**`
    variables, `/`. PathValueError, before anything is sent, for a value the server would
    refuse: empty, `/` in a `*` variable, or a `.`/`..` segment (docs/operations/http.md).
    """
    bound: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        dotted, pattern = match.group(1), match.group(2) or "*"
        holder, name = _field_path(request, dotted)
        field = holder.DESCRIPTOR.fields_by_name[name]
        text = _format_value(field, getattr(holder, name))
        _check_path_value(request, dotted, text, spans=pattern == "**")
        bound.add(dotted)
        return quote(text, safe=":/" if pattern == "**" else ":")

    return _VARIABLE.sub(substitute, template), bound


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, item, out)
    elif isinstance(value, list):
        for item in value:
            _flatten(prefix, item, out)
    elif isinstance(value, bool):
        out.append((prefix, "true" if value else "false"))
    else:
        out.append((prefix, str(value)))


def _json_path(desc: Any, dotted: str) -> list[str]:
    # `desc` is a message Descriptor (the upb one at run time, which the stubs type apart).
    names = []
    for name in dotted.split("."):
        field = desc.fields_by_name[name]
        names.append(field.json_name)
        if field.message_type is not None:
            desc = field.message_type
    return names


def _drop(mapped: dict[str, Any], keys: list[str]) -> None:
    for key in keys[:-1]:
        inner = mapped.get(key)
        if not isinstance(inner, dict):
            return
        mapped = inner
    mapped.pop(keys[-1], None)


def query_pairs(
    request: message.Message, exclude: set[str], body_field: str = ""
) -> list[tuple[str, str]]:
    """The query parameters carrying every set field not bound to the path or the body.

    Names are proto3 JSON names with dots for nesting; values are the JSON mapping's strings
    (int64 as decimal, enums by name, RFC 3339 timestamps); repeated fields repeat the name.
    """
    mapped = json_format.MessageToDict(request)
    for dotted in (*exclude, *([body_field] if body_field else [])):
        _drop(mapped, _json_path(request.DESCRIPTOR, dotted))
    pairs: list[tuple[str, str]] = []
    _flatten("", mapped, pairs)
    return pairs


def _without(request: message.Message, bound: set[str]) -> message.Message:
    """`request` minus the path-bound fields: a `body: "*"` body must not carry them (HTTP.md)."""
    if not bound:
        return request
    body = type(request)()
    body.CopyFrom(request)
    for dotted in bound:
        holder, name = _field_path(body, dotted)
        holder.ClearField(name)
    return body


@dataclass(frozen=True, slots=True)
class _Prepared:
    method: str
    path: str
    params: tuple[tuple[str, str], ...]
    content: bytes | None
    headers: dict[str, str]


def _bearer(token: TokenSource) -> str | None:
    if token is None:
        return None
    return token() if callable(token) else token


def prepare(
    operation: Operation[Any, Any],
    request: message.Message,
    encoding: codec.Encoding,
    token: TokenSource,
) -> _Prepared:
    path, bound = build_path(operation.path, request)
    headers = {"Accept": encoding.media_type}
    bearer = _bearer(token)
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    content: bytes | None = None
    if operation.body == "*":
        content, params = codec.encode(_without(request, bound), encoding), []
    else:
        params = query_pairs(request, bound, operation.body)
        if operation.body:
            content = codec.encode(getattr(request, operation.body), encoding)
    if content is not None:
        headers["Content-Type"] = encoding.media_type
    return _Prepared(operation.method, path, tuple(params), content, headers)


def _media(response: httpx.Response, asked: codec.Encoding) -> codec.Encoding:
    content_type = response.headers.get("content-type")
    if content_type is None:
        return asked
    try:
        return codec.body_encoding(content_type)
    except QmtlError:
        return asked


def _error_without_detail(response: httpx.Response) -> error_pb2.ErrorDetail:
    # A proxy or a crashed server may answer without an ErrorDetail; keep its status visible.
    matches = [info for info in known_codes() if info.http_status == response.status_code]
    if len(matches) == 1:
        code = matches[0].wire_code
    else:
        fallback = ErrorCode.ERROR_CODE_INTERNAL
        if response.status_code < 500:
            fallback = ErrorCode.ERROR_CODE_VALIDATION
        code = error_info(fallback).wire_code
    snippet = response.content[:200].decode("utf-8", "replace")
    return error_pb2.ErrorDetail(
        code=code, message=f"HTTP {response.status_code} without an ErrorDetail body: {snippet}"
    )


def finish(
    operation: Operation[Any, Resp], response: httpx.Response, asked: codec.Encoding
) -> Resp:
    """The decoded response, or QmtlClientError for any status outside 2xx."""
    encoding = _media(response, asked)
    if response.is_success:
        try:
            return codec.decode(operation.response, response.content, encoding, ignore_unknown=True)
        except QmtlError as exc:
            raise QmtlClientError(exc.to_proto(), response.status_code) from None
    try:
        detail = codec.decode(
            error_pb2.ErrorDetail, response.content, encoding, ignore_unknown=True
        )
    except QmtlError:
        detail = error_pb2.ErrorDetail()
    if not detail.code:
        detail = _error_without_detail(response)
    raise QmtlClientError(detail, response.status_code)


def transport_error(operation: Operation[Any, Any], exc: httpx.TransportError) -> QmtlClientError:
    code = ErrorCode.ERROR_CODE_UNAVAILABLE
    if isinstance(exc, httpx.TimeoutException):
        code = ErrorCode.ERROR_CODE_TIMEOUT
    detail = QmtlError(code, f"{operation.name}: {type(exc).__name__}: {exc}").to_proto()
    return QmtlClientError(detail, 0)


def _no_listener(operation: Operation[Any, Any]) -> ValueError:
    which = "internal" if operation.internal else "public"
    return ValueError(f"{operation.name} is served on the {which} listener; pass `{which}=`")


class SyncServiceClient:
    """Base of the generated synchronous clients: one httpx.Client per listener.

    `public` and `internal` are base URLs (the client owns and closes its httpx.Client) or
    ready httpx.Clients (the caller owns them, e.g. a test transport). `token` is a bearer
    token or a callable returning a fresh one for each request.
    """

    def __init__(
        self,
        public: Listener = None,
        internal: Listener = None,
        *,
        token: TokenSource = None,
        encoding: codec.Encoding = codec.Encoding.PROTOBUF,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._owned: list[httpx.Client] = []
        self._public = self._client(public, timeout)
        self._internal = self._client(internal, timeout)
        self._token = token
        self._encoding = encoding

    def _client(self, listener: Listener, timeout: float) -> httpx.Client | None:
        if listener is None or isinstance(listener, httpx.Client):
            return listener
        client = httpx.Client(base_url=listener, timeout=timeout)
        self._owned.append(client)
        return client

    def _call(self, operation: Operation[Req, Resp], request: Req) -> Resp:
        http = self._internal if operation.internal else self._public
        if http is None:
            raise _no_listener(operation)
        prepared = prepare(operation, request, self._encoding, self._token)
        try:
            response = http.request(
                prepared.method,
                prepared.path,
                params=prepared.params,
                content=prepared.content,
                headers=prepared.headers,
            )
        except httpx.TransportError as exc:
            raise transport_error(operation, exc) from exc
        return finish(operation, response, self._encoding)

    def close(self) -> None:
        for client in self._owned:
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncServiceClient:
    """Base of the generated asynchronous clients; as SyncServiceClient over httpx.AsyncClient."""

    def __init__(
        self,
        public: AsyncListener = None,
        internal: AsyncListener = None,
        *,
        token: TokenSource = None,
        encoding: codec.Encoding = codec.Encoding.PROTOBUF,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._owned: list[httpx.AsyncClient] = []
        self._public = self._client(public, timeout)
        self._internal = self._client(internal, timeout)
        self._token = token
        self._encoding = encoding

    def _client(self, listener: AsyncListener, timeout: float) -> httpx.AsyncClient | None:
        if listener is None or isinstance(listener, httpx.AsyncClient):
            return listener
        client = httpx.AsyncClient(base_url=listener, timeout=timeout)
        self._owned.append(client)
        return client

    async def _call(self, operation: Operation[Req, Resp], request: Req) -> Resp:
        http = self._internal if operation.internal else self._public
        if http is None:
            raise _no_listener(operation)
        prepared = prepare(operation, request, self._encoding, self._token)
        try:
            response = await http.request(
                prepared.method,
                prepared.path,
                params=prepared.params,
                content=prepared.content,
                headers=prepared.headers,
            )
        except httpx.TransportError as exc:
            raise transport_error(operation, exc) from exc
        return finish(operation, response, self._encoding)

    async def aclose(self) -> None:
        for client in self._owned:
            await client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
