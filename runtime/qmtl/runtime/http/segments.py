"""Path parameters never span segments (docs/operations/http.md).

ASGI servers hand the app the percent-decoded path, and Starlette routes on it, so a value
sent as `a%2Fstatus` would arrive as two segments and route to another operation
(`/strategies/a%2Fstatus` to GetStrategyStatus("a")). The raw path still shows which slashes
were encoded; a request with one is refused with a 400 naming the parameter it was sent in,
unless that parameter is a `**` one (Starlette's `path` convertor), which spans segments by
design. Dot segments (`.`, `..`, `%2E%2E`) are refused in params.parse_path_into, which sees
every path value and knows its parameter's JSON name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

from starlette.convertors import PathConvertor
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from qmtl.runtime.errors import ErrorCode, QmtlError

_ENCODED_SLASH = re.compile(rb"%2[fF]")
# U+FFFF is a noncharacter: it stands in for an encoded slash while the path is routed, so
# the slash stays inside its segment and shows which parameter held it.
_MARK = "\uffff"
_MARK_ESCAPED = b"%EF%BF%BF"


def _marked_path(raw: bytes) -> str:
    return unquote(_ENCODED_SLASH.sub(_MARK_ESCAPED, raw).decode("latin-1"), errors="replace")


def _match(routes: Iterable[BaseRoute], scope: Scope) -> tuple[Route, Scope] | None:
    # The route the router would pick: the first full match, else the first partial one.
    partial: tuple[Route, Scope] | None = None
    for route in routes:
        if not isinstance(route, Route):
            continue
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route, child
        if match is Match.PARTIAL and partial is None:
            partial = route, child
    return partial


def _json_name(key: str) -> str:
    """`page__page_size` -> `page.pageSize`: the route's key as the other path errors name it.

    Starlette names `{a.b}` as `a__b`; each field gets protoc's default JSON name, which is
    the name unless a schema sets `json_name` on a path field.
    """
    parts = []
    for field_name in key.split("__"):
        head, *rest = field_name.split("_")
        parts.append(head + "".join(word[:1].upper() + word[1:] for word in rest))
    return ".".join(parts)


def encoded_slash_error(scope: Scope, routes: Iterable[BaseRoute]) -> QmtlError | None:
    """The 400 for a raw path whose encoded `/` would land outside a `**` parameter, or None."""
    raw: bytes | None = scope.get("raw_path")
    if not raw or b"%" not in raw or _ENCODED_SLASH.search(raw) is None:
        return None
    found = _match(routes, {**scope, "path": _marked_path(raw), "root_path": ""})
    if found is None:
        return QmtlError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            "the path holds an encoded '/' (%2F): a path parameter never spans segments",
        )
    route, child = found
    for key, value in child.get("path_params", {}).items():
        if _MARK in str(value) and not isinstance(route.param_convertors[key], PathConvertor):
            name = _json_name(key)
            return QmtlError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                f"path parameter {name!r} must not contain '/' (sent as %2F): "
                "a path parameter never spans segments",
                details={"parameter": name},
            )
    return None
