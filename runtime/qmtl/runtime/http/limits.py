"""The request body limit of the generated apps (docs/operations/http.md).

The limit is enforced at the ASGI edge, not in the endpoints: a declared Content-Length over
it is refused before anything is read, and a body without one (chunked) is counted as its
chunks arrive from `receive`, so reading stops at the first chunk past the limit instead of
holding the whole body in memory first. The endpoints read bodies through the wrapped
`receive`, so the 413 comes out of their usual error handling, after authentication.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from qmtl.runtime.errors import ErrorCode, QmtlError

if TYPE_CHECKING:  # type names only: the gRPC caller reads the limit without starlette installed
    from starlette.types import Message, Receive, Scope

ENV_MAX_BODY_BYTES = "QMTL_HTTP_MAX_BODY_BYTES"
# A 1,000-node DAG is about 1 MB in either encoding; 16 MiB leaves room for far larger ones
# while bounding what one request can make a server hold.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024

# Methods whose body no generated endpoint reads (google.api.http forbids a GET body), so
# they skip the wrapper and keep the GET path as cheap as it was.
_BODYLESS = frozenset({"GET", "HEAD"})


class HttpConfigError(ValueError):
    """A limit given to an app (argument or environment variable) cannot be used."""


def resolve_max_body_bytes(max_body_bytes: int | None, env: Mapping[str, str] | None = None) -> int:
    """The limit to enforce: the argument, else QMTL_HTTP_MAX_BODY_BYTES, else the default."""
    if max_body_bytes is None:
        raw = (os.environ if env is None else env).get(ENV_MAX_BODY_BYTES, "").strip()
        if not raw:
            return DEFAULT_MAX_BODY_BYTES
        try:
            max_body_bytes = int(raw)
        except ValueError:
            raise HttpConfigError(
                f"{ENV_MAX_BODY_BYTES} must be a whole number of bytes, got {raw!r}"
            ) from None
    if isinstance(max_body_bytes, bool) or max_body_bytes < 1:
        raise HttpConfigError(f"the body limit must be at least 1 byte, got {max_body_bytes!r}")
    return max_body_bytes


def payload_too_large(limit: int, received: int | None = None) -> QmtlError:
    """The 413 E_PAYLOAD_TOO_LARGE; `details.max_body_bytes` tells the client the limit."""
    details: dict[str, int] = {"max_body_bytes": limit}
    if received is not None:
        details["content_length"] = received
    return QmtlError(
        ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
        f"request body exceeds the limit of {limit} bytes",
        details=details,
    )


def declared_too_large(scope: Scope, limit: int) -> QmtlError | None:
    """The 413 for a Content-Length over `limit`; None when it is within it, absent or unreadable.

    An unreadable Content-Length is left to the server, which refuses it before the app runs.
    """
    if scope["method"] in _BODYLESS:
        return None
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                return payload_too_large(limit, int(value))
            return None
    return None


class LimitedReceive:
    """`receive` that raises the 413 once the body chunks seen so far exceed `limit`.

    The chunk that crosses the limit is dropped, not returned, and nothing more is read.
    """

    __slots__ = ("_limit", "_receive", "_seen")

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._seen = 0

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._seen += len(message.get("body", b""))
            if self._seen > self._limit:
                raise payload_too_large(self._limit)
        return message


def limit_body(scope: Scope, receive: Receive, limit: int) -> Receive:
    """`receive`, wrapped to enforce `limit` unless the method never carries a read body."""
    if scope["method"] in _BODYLESS:
        return receive
    return LimitedReceive(receive, limit)
