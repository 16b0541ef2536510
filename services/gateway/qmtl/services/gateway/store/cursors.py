"""Paging cursors: opaque to callers, checked on the way back in.

A cursor is unpadded base64url of `<kind>1|<filters>|<position>`. `filters` is a digest of the
call's filters, so a cursor reused with other filters is refused (E_INVALID_PAGE_TOKEN, as the
catalogue says) instead of silently paging another listing. Positions: for `list`, the last
strategy handed out as `<created ms>:<strategy id>` (the next page starts strictly after it, so
strategies created meanwhile never shift a page); for `events`, the log sequence number of the
last event handed out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Collection

from .errors import InvalidCursorError

_LIST = "l1"
_EVENTS = "e1"


def _encode(kind: str, filters: str, position: str) -> str:
    text = f"{kind}|{filters}|{position}".encode()
    return base64.urlsafe_b64encode(text).decode("ascii").rstrip("=")


def _decode(kind: str, filters: str, cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidCursorError("not a cursor this store handed out") from None
    parts = text.split("|", 2)
    if len(parts) != 3 or parts[0] != kind:
        raise InvalidCursorError("not a cursor this store handed out")
    if parts[1] != filters:
        raise InvalidCursorError("the cursor belongs to a listing with other filters")
    return parts[2]


def _list_filters(state: int) -> str:
    return str(state)


def _events_filters(strategy_id: str, types: Collection[str], since: float | None) -> str:
    # float(): since=100 and since=100.0 are one filter.
    moment = "" if since is None else repr(float(since))
    key = "\x00".join([strategy_id, moment, *sorted(set(types))])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def list_cursor(state: int, created_ms: int, strategy_id: str) -> str:
    return _encode(_LIST, _list_filters(state), f"{created_ms}:{strategy_id}")


def list_position(state: int, cursor: str) -> tuple[int, str] | None:
    """(created ms, strategy id) of the last strategy of the previous page; None for "first"."""
    if not cursor:
        return None
    position = _decode(_LIST, _list_filters(state), cursor)
    ms, sep, strategy_id = position.partition(":")
    if not sep or not strategy_id or not (ms.isascii() and ms.isdigit()):
        raise InvalidCursorError("not a cursor this store handed out")
    return int(ms), strategy_id


def events_cursor(strategy_id: str, types: Collection[str], since: float | None, seq: int) -> str:
    return _encode(_EVENTS, _events_filters(strategy_id, types, since), str(seq))


def events_position(
    strategy_id: str, types: Collection[str], since: float | None, cursor: str
) -> int:
    """The sequence number the next page starts after; 0 for "first"."""
    if not cursor:
        return 0
    position = _decode(_EVENTS, _events_filters(strategy_id, types, since), cursor)
    if not (position.isascii() and position.isdigit()):
        raise InvalidCursorError("not a cursor this store handed out")
    return int(position)
