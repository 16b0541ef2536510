"""Calling an app with an exact ASGI scope, as a server would build it from the request line.

httpx normalises paths (`a/../b` becomes `b`) and always reads a body the way it likes, so the
hardening tests that need a given raw path, or need to see how far the app read a body, call
the app directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from google.protobuf import json_format
from starlette.types import ASGIApp, Message

from qmtl.common.v1.error_pb2 import ErrorDetail

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@dataclass
class RawResponse:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # How many times the app called `receive`: how much of the request body it read.
    receive_calls: int = 0

    def error(self) -> ErrorDetail:
        """The ErrorDetail body, in whichever encoding the response declares."""
        if self.headers["content-type"].startswith(JSON):
            return json_format.Parse(self.body.decode(), ErrorDetail())
        assert self.headers["content-type"] == PROTOBUF
        return ErrorDetail.FromString(self.body)


async def call(
    app: ASGIApp,
    method: str,
    raw_path: bytes,
    *,
    headers: Sequence[tuple[str, str]] = (),
    body_chunks: Iterable[bytes] = (),
) -> RawResponse:
    """`app` called as uvicorn would for this request line; `path` is `raw_path` decoded."""
    chunks = iter(body_chunks)
    result = RawResponse()
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
    }

    async def receive() -> Message:
        result.receive_calls += 1
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in message["headers"]
            }
        elif message["type"] == "http.response.body":
            result.body += message.get("body", b"")

    await app(scope, receive, send)
    return result
