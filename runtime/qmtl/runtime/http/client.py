"""The engine under the generated typed clients: one exchange per rpc over httpx.

A generated client method passes a static `Operation` (verb, path parts, body rule, response
type, listener, idempotency) and the request message; this module builds the URL, query and
body by the same rules the server reads them with (docs/api/HTTP.md), sends it within the
call's deadline, retries what may be retried (qmtl.runtime.client_retry) and returns the
decoded response or raises `QmtlError` -- the same type a service raises, rebuilt from the
ErrorDetail received (`.status` is the HTTP status; 0 when no answer came: E_UNAVAILABLE for
a failed connection, E_TIMEOUT for a passed deadline). Behaviour: docs/api/CLIENT.md.

It imports httpx only, so a client does not pull in the server stack.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx
from google.protobuf import json_format, message

from qmtl.common.v1 import error_pb2
from qmtl.runtime import codec, contracts_version
from qmtl.runtime.client_paging import Paging, aiter_items, iter_items
from qmtl.runtime.client_retry import RetryPolicy
from qmtl.runtime.errors import ErrorCode, QmtlError, error_info, known_codes
from qmtl.runtime.http.client_path import (
    PathPart,
    PathValueError,
    Var,
    build_path,
    field_path,
    json_path,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "TIMEOUT_HEADER",
    "AsyncServiceClient",
    "Operation",
    "PathValueError",
    "SyncServiceClient",
    "Var",
    "build_path",
    "finish",
    "prepare",
    "query_pairs",
]

Req = TypeVar("Req", bound=message.Message)
Resp = TypeVar("Resp", bound=message.Message)

TokenSource = str | Callable[[], str] | None
Listener = str | httpx.Client | None
AsyncListener = str | httpx.AsyncClient | None

# Seconds a call may take, retries included, unless the client or the call says otherwise.
DEFAULT_TIMEOUT = 10.0
# The time left before the call's deadline, in whole milliseconds, so the server stops too.
TIMEOUT_HEADER = "qmtl-timeout-ms"
# Servers read at most 12 digits (docs/api/HTTP.md); a longer timeout is sent as this (~31 years).
_MAX_TIMEOUT_MS = 999_999_999_999


@dataclass(frozen=True, slots=True)
class Operation(Generic[Req, Resp]):
    """One HTTP binding of an rpc, as the generated client sees it."""

    name: str  # full rpc name, e.g. qmtl.gateway.v1.GatewayService.GetStrategy
    method: str  # GET, POST, ...
    path: tuple[PathPart, ...]  # the parsed template: literal text and Vars
    body: str  # "" (none), "*" (whole request) or a field name
    response: type[Resp]
    internal: bool  # served on the internal listener, not the public one
    idempotent: bool = False  # may be retried; a GET always may
    paging: Paging | None = None  # a list rpc: where its page cursor is

    @property
    def retriable(self) -> bool:
        return self.idempotent or self.method == "GET"


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
        _drop(mapped, json_path(request.DESCRIPTOR, dotted))
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
        holder, name = field_path(body, dotted)
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
    """The request as sent (without the deadline header, which each attempt sets)."""
    path, bound = build_path(operation.path, request)
    # The contracts version lets a server of another major refuse the call (412) up front.
    headers = {"Accept": encoding.media_type, contracts_version.HEADER: contracts_version.SPOKEN}
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


# The code a bare status stands for when several codes share it (503: also E_QUEUE_CREATE_FAILED).
_GENERIC = (
    ErrorCode.ERROR_CODE_UNAVAILABLE,
    ErrorCode.ERROR_CODE_TIMEOUT,
    ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
    ErrorCode.ERROR_CODE_INTERNAL,
)


def _error_without_detail(response: httpx.Response) -> error_pb2.ErrorDetail:
    # A proxy or a crashed server may answer without an ErrorDetail; keep its status visible,
    # and its retryability (a gateway's 503 is worth retrying).
    matches = [info for info in known_codes() if info.http_status == response.status_code]
    generic = [info for info in matches if info.code in _GENERIC]
    if len(matches) == 1 or generic:
        info = (generic or matches)[0]
    else:
        fallback = ErrorCode.ERROR_CODE_INTERNAL
        if response.status_code < 500:
            fallback = ErrorCode.ERROR_CODE_VALIDATION
        info = error_info(fallback)
    snippet = response.content[:200].decode("utf-8", "replace")
    return error_pb2.ErrorDetail(
        code=info.wire_code,
        message=f"HTTP {response.status_code} without an ErrorDetail body: {snippet}",
        retryable=info.retryable,
    )


def _retry_after_header(response: httpx.Response, detail: error_pb2.ErrorDetail) -> None:
    # The body's retry_after wins; a bare Retry-After (delta-seconds) from a proxy still counts.
    value = response.headers.get("retry-after", "").strip()
    if not detail.HasField("retry_after") and value.isascii() and value.isdigit():
        detail.retry_after.seconds = min(int(value), 10**9)


def finish(
    operation: Operation[Any, Resp], response: httpx.Response, asked: codec.Encoding
) -> Resp:
    """The decoded response, or QmtlError (with `.status`) for any status outside 2xx."""
    encoding = _media(response, asked)
    if response.is_success:
        try:
            return codec.decode(operation.response, response.content, encoding, ignore_unknown=True)
        except QmtlError as exc:
            raise QmtlError.from_detail(exc.to_proto(), status=response.status_code) from None
    try:
        detail = codec.decode(
            error_pb2.ErrorDetail, response.content, encoding, ignore_unknown=True
        )
    except QmtlError:
        detail = error_pb2.ErrorDetail()
    if not detail.code:
        detail = _error_without_detail(response)
    _retry_after_header(response, detail)
    raise QmtlError.from_detail(detail, status=response.status_code)


def _no_answer(operation: Operation[Any, Any], code: ErrorCode.ValueType, why: str) -> QmtlError:
    detail = QmtlError(code, f"{operation.name}: {why}").to_proto()
    return QmtlError.from_detail(detail, status=0)


def transport_error(operation: Operation[Any, Any], exc: Exception) -> QmtlError:
    """E_TIMEOUT for a passed deadline, else E_UNAVAILABLE (retryable); status 0."""
    why = f"{type(exc).__name__}: {exc}".rstrip(": ")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return _no_answer(operation, ErrorCode.ERROR_CODE_TIMEOUT, f"deadline passed ({why})")
    return _no_answer(operation, ErrorCode.ERROR_CODE_UNAVAILABLE, why)


class _Settings:
    """What both client flavours share: token, encoding, default timeout and retry policy."""

    def __init__(
        self,
        token: TokenSource,
        encoding: codec.Encoding,
        timeout: float,
        retry: RetryPolicy | None,
    ) -> None:
        if not timeout > 0:
            raise QmtlError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT, f"timeout must be positive, got {timeout}"
            )
        self._token = token
        self._encoding = encoding
        self._timeout = timeout
        self._retry = RetryPolicy() if retry is None else retry

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self._timeout if timeout is None else timeout)

    def _attempt_headers(self, prepared: _Prepared, remaining: float) -> dict[str, str]:
        headers = dict(prepared.headers)
        headers[TIMEOUT_HEADER] = str(min(_MAX_TIMEOUT_MS, max(1, math.ceil(remaining * 1000))))
        return headers

    def _no_listener(self, operation: Operation[Any, Any]) -> QmtlError:
        which = "internal" if operation.internal else "public"
        error = QmtlError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"{operation.name} is served on the {which} listener; pass `{which}=`",
            details={"listener": which},
        )
        error.status = 0
        return error


class SyncServiceClient(_Settings):
    """Base of the generated synchronous clients: one httpx.Client per listener.

    `public` and `internal` are base URLs (the client owns and closes its httpx.Client) or
    ready httpx.Clients (the caller owns them, e.g. a test transport). `token` is a bearer
    token or a callable returning a fresh one for each request. `timeout` bounds each call,
    retries included; `retry` is the policy of idempotent calls (both overridable per call).
    """

    def __init__(
        self,
        public: Listener = None,
        internal: Listener = None,
        *,
        token: TokenSource = None,
        encoding: codec.Encoding = codec.Encoding.PROTOBUF,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(token, encoding, timeout, retry)
        self._owned: list[httpx.Client] = []
        self._public = self._client(public)
        self._internal = self._client(internal)

    def _client(self, listener: Listener) -> httpx.Client | None:
        if listener is None or isinstance(listener, httpx.Client):
            return listener
        client = httpx.Client(base_url=listener, timeout=self._timeout)
        self._owned.append(client)
        return client

    def _once(
        self, operation: Operation[Req, Resp], request: Req, http: httpx.Client, deadline: float
    ) -> Resp:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _no_answer(operation, ErrorCode.ERROR_CODE_TIMEOUT, "deadline passed")
        prepared = prepare(operation, request, self._encoding, self._token)
        try:
            response = http.request(
                prepared.method,
                prepared.path,
                params=prepared.params,
                content=prepared.content,
                headers=self._attempt_headers(prepared, remaining),
                timeout=remaining,
            )
        except httpx.TransportError as exc:
            raise transport_error(operation, exc) from exc
        return finish(operation, response, self._encoding)

    def _call(
        self,
        operation: Operation[Req, Resp],
        request: Req,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Resp:
        http = self._internal if operation.internal else self._public
        if http is None:
            raise self._no_listener(operation)
        policy = self._retry if retry is None else retry
        deadline = self._deadline(timeout)
        attempt = 1
        while True:
            try:
                return self._once(operation, request, http, deadline)
            except QmtlError as error:
                remaining = deadline - time.monotonic()
                wait = policy.delay(
                    attempt, error, idempotent=operation.retriable, remaining=remaining
                )
                if wait is None:
                    raise
            policy.sleep(wait)
            attempt += 1

    def _iter(
        self,
        operation: Operation[Req, Resp],
        request: Req,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Iterator[Any]:
        assert operation.paging is not None, f"{operation.name} is not a list rpc"

        def page(req: Req) -> Resp:
            return self._call(operation, req, timeout=timeout, retry=retry)

        return iter_items(operation.paging, operation.name, request, page)

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


class AsyncServiceClient(_Settings):
    """Base of the generated asynchronous clients; as SyncServiceClient over httpx.AsyncClient.

    The deadline is also enforced around the whole exchange (asyncio.timeout), so it holds
    over transports that ignore httpx timeouts, such as httpx.ASGITransport.
    """

    def __init__(
        self,
        public: AsyncListener = None,
        internal: AsyncListener = None,
        *,
        token: TokenSource = None,
        encoding: codec.Encoding = codec.Encoding.PROTOBUF,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(token, encoding, timeout, retry)
        self._owned: list[httpx.AsyncClient] = []
        self._public = self._client(public)
        self._internal = self._client(internal)

    def _client(self, listener: AsyncListener) -> httpx.AsyncClient | None:
        if listener is None or isinstance(listener, httpx.AsyncClient):
            return listener
        client = httpx.AsyncClient(base_url=listener, timeout=self._timeout)
        self._owned.append(client)
        return client

    async def _once(
        self,
        operation: Operation[Req, Resp],
        request: Req,
        http: httpx.AsyncClient,
        deadline: float,
    ) -> Resp:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _no_answer(operation, ErrorCode.ERROR_CODE_TIMEOUT, "deadline passed")
        prepared = prepare(operation, request, self._encoding, self._token)
        try:
            async with asyncio.timeout(remaining):
                response = await http.request(
                    prepared.method,
                    prepared.path,
                    params=prepared.params,
                    content=prepared.content,
                    headers=self._attempt_headers(prepared, remaining),
                    timeout=remaining,
                )
        except (httpx.TransportError, TimeoutError) as exc:
            raise transport_error(operation, exc) from exc
        return finish(operation, response, self._encoding)

    async def _call(
        self,
        operation: Operation[Req, Resp],
        request: Req,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the per-call deadline is API
        retry: RetryPolicy | None = None,
    ) -> Resp:
        http = self._internal if operation.internal else self._public
        if http is None:
            raise self._no_listener(operation)
        policy = self._retry if retry is None else retry
        deadline = self._deadline(timeout)
        attempt = 1
        while True:
            try:
                return await self._once(operation, request, http, deadline)
            except QmtlError as error:
                remaining = deadline - time.monotonic()
                wait = policy.delay(
                    attempt, error, idempotent=operation.retriable, remaining=remaining
                )
                if wait is None:
                    raise
            await policy.async_sleep(wait)
            attempt += 1

    def _iter(
        self,
        operation: Operation[Req, Resp],
        request: Req,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> AsyncIterator[Any]:
        assert operation.paging is not None, f"{operation.name} is not a list rpc"

        async def page(req: Req) -> Resp:
            return await self._call(operation, req, timeout=timeout, retry=retry)

        return aiter_items(operation.paging, operation.name, request, page)

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
