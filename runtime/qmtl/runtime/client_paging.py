"""Iterating a list rpc's items across pages, for the typed clients' `iter_<rpc>` methods.

A list rpc's request has a `qmtl.common.v1.PageRequest` field and its response a
`qmtl.common.v1.PageInfo` field; the generator names both and the repeated items field in a
`Paging`. The iterator asks for the first page with the caller's request, then follows
`next_page_token` until it is empty. Each page is a call of its own (own timeout, own retries).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf import message

from qmtl.runtime.errors import ErrorCode, QmtlError

__all__ = ["Paging", "aiter_items", "iter_items"]

Req = TypeVar("Req", bound=message.Message)
Resp = TypeVar("Resp", bound=message.Message)


@dataclass(frozen=True, slots=True)
class Paging:
    """Where a list rpc keeps its cursor: field names on the request and the response."""

    request_field: str  # the PageRequest field of the request, e.g. "page"
    response_field: str  # the PageInfo field of the response, e.g. "page_info"
    items_field: str  # the repeated field of the response holding the items, e.g. "nodes"


class _Cursor:
    """The request of the next page; refuses a token seen before (the loop would not end)."""

    def __init__(self, paging: Paging, request: message.Message) -> None:
        self.paging = paging
        self.request = type(request)()
        self.request.CopyFrom(request)  # the caller's request is never changed
        self.seen: set[str] = set()

    def advance(self, operation: str, response: message.Message) -> bool:
        token: str = getattr(response, self.paging.response_field).next_page_token
        if not token:
            return False
        if token in self.seen:
            raise QmtlError(
                ErrorCode.ERROR_CODE_INVALID_PAGE_TOKEN,
                f"{operation}: the server returned next_page_token {token!r} a second time",
                retryable=False,
            )
        self.seen.add(token)
        getattr(self.request, self.paging.request_field).page_token = token
        return True


def iter_items(
    paging: Paging, operation: str, request: Req, call: Callable[[Req], Resp]
) -> Iterator[Any]:
    """Every item of every page, asking `call` for one page at a time."""
    cursor = _Cursor(paging, request)
    while True:
        response = call(cursor.request)  # type: ignore[arg-type]
        yield from getattr(response, paging.items_field)
        if not cursor.advance(operation, response):
            return


async def aiter_items(
    paging: Paging, operation: str, request: Req, call: Callable[[Req], Awaitable[Resp]]
) -> AsyncIterator[Any]:
    """As iter_items, awaiting each page."""
    cursor = _Cursor(paging, request)
    while True:
        response = await call(cursor.request)  # type: ignore[arg-type]
        for item in getattr(response, paging.items_field):
            yield item
        if not cursor.advance(operation, response):
            return
