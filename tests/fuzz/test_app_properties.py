"""The generated apps: whatever a caller with a valid token sends, the answer is never a 5xx.

Each request goes to the app as a raw ASGI call, so the query string and the path reach the
router byte for byte as a client sent them (an HTTP client library would re-escape them).
Bodies, query strings and path values come from tests/fuzz/strategies.py; the handler answers
every rpc with its golden fixture (tests/http/conftest.py). An error answer must carry an
ErrorDetail in the encoding the response declares.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qmtl.common.v1 import error_pb2
from qmtl.runtime import codec
from tests.fuzz import known_defects, strategies
from tests.fuzz.profile import FUZZ_PER_ITEM
from tests.fuzz.targets import BINDINGS, check_decode, check_query
from tests.http.conftest import build_apps
from tests.http.surface import OPERATIONS, Op, auth_headers, http_module

_VARIABLE = re.compile(r"\{([^{}=]+)(?:=[^{}]*)?\}")
_CONTENT_TYPES = ["application/json", "application/x-protobuf", "application/json; charset=utf-8"]
_ACCEPTS = ["application/json", "application/x-protobuf", "*/*", "text/html"]


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


async def _call(
    app: FastAPI,
    method: str,
    path: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> Answer:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": _decoded_path(path),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
    }
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    sent: list[MutableMapping[str, Any]] = []

    async def send(event: MutableMapping[str, Any]) -> None:
        sent.append(event)

    await app(scope, receive, send)
    start = next(event for event in sent if event["type"] == "http.response.start")
    content_type = dict(start.get("headers", [])).get(b"content-type", b"").decode("latin-1")
    payload = b"".join(e.get("body", b"") for e in sent if e["type"] == "http.response.body")
    return Answer(start["status"], content_type, payload)


def _decoded_path(raw: bytes) -> str:
    # As uvicorn does: percent-decoded, then read as UTF-8 (latin-1 if it is not).
    from urllib.parse import unquote_to_bytes

    decoded = unquote_to_bytes(raw)
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        return decoded.decode("latin-1")


def _binding(op: Op) -> Any:
    prefix = http_module(op.service).__name__ + "."
    matches = [
        binding
        for name, binding in BINDINGS.items()
        if name.startswith(prefix) and binding.request.DESCRIPTOR is op.method.input_type
    ]
    assert len(matches) == 1, op.id
    return matches[0]


def _path(op: Op) -> st.SearchStrategy[bytes]:
    """The op's path template, each variable filled with an edge value, escaped."""
    parts = _VARIABLE.split(op.path)
    literals, names = parts[::2], parts[1::2]
    values = st.lists(strategies.edge_text, min_size=len(names), max_size=len(names))

    def fill(chosen: list[str]) -> bytes:
        out = literals[0]
        for value, literal in zip(chosen, literals[1:], strict=True):
            out += quote(value.encode("utf-8", "surrogatepass"), safe=":") + literal
        return out.encode()

    return values.map(fill)


def _headers(op: Op, content_type: str | None, accept: str) -> list[tuple[bytes, bytes]]:
    headers = [(b"accept", accept.encode())]
    for name, value in auth_headers(op).items():
        headers.append((name.lower().encode(), value.encode()))
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    return headers


def _check(answer: Answer, request: str) -> None:
    assert answer.status < 500, f"{request} -> {answer.status} {answer.body[:300]!r}"
    if answer.status >= 400:
        encoding = codec.body_encoding(answer.content_type)
        detail = codec.decode(error_pb2.ErrorDetail, answer.body, encoding)
        assert detail.code.startswith("E_"), f"{request} -> {answer.status} without a code"


OPS = [pytest.param(op, id=op.id) for op in OPERATIONS]


@pytest.mark.parametrize("op", OPS)
def test_no_request_from_a_valid_caller_gets_a_5xx(op: Op) -> None:
    apps = build_apps(op)
    app = apps.app_for(op)
    binding = _binding(op)
    request = binding.request
    if op.body:
        body = st.one_of(
            strategies.json_body(strategies.descriptor_of(binding.request)),
            strategies.wire_body(strategies.descriptor_of(binding.request)),
        )
        content_type: st.SearchStrategy[str | None] = st.sampled_from([*_CONTENT_TYPES, None])
    else:
        body = st.just(b"")
        content_type = st.none()

    @settings(FUZZ_PER_ITEM)
    @given(
        path=_path(op),
        query=strategies.query_string(binding),
        body=body,
        content_type=content_type,
        accept=st.sampled_from(_ACCEPTS),
    )
    def holds(
        path: bytes, query: bytes, body: bytes, content_type: str | None, accept: str
    ) -> None:
        # A defect tests/fuzz/known_defects.py lists has its own regression tests.
        assume(not known_defects.shows_known(lambda: check_query(binding, query)))
        if content_type is not None and body:
            encoding = codec.body_encoding(content_type)
            assume(not known_defects.shows_known(lambda: check_decode(request, body, encoding)))
        headers = _headers(op, content_type, accept)
        answer = asyncio.run(_call(app, op.verb, path, query, headers, body))
        _check(answer, f"{op.verb} {path!r}?{query!r} {content_type} {body[:200]!r}")

    holds()
