"""The URL path of a client call, filled from the request by the parts the generator parsed.

The generator parses each google.api.http template once (qmtl_codegen.api.pathtemplate) and
emits it as literal strings and `Var`s, e.g. `("/v1/nodes/", Var("node_id"))`; the client
never re-parses a template at run time. Values are formatted as the routers read them
(docs/api/HTTP.md) and refused before sending when the server would refuse them.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from google.protobuf import descriptor, message

from qmtl.runtime.errors import ErrorCode, QmtlError

_DOT_SEGMENTS = frozenset({".", ".."})


@dataclass(frozen=True, slots=True)
class Var:
    """A path variable: the request field (dotted when nested) whose value fills it.

    `spans` is True for `{field=**}`, whose value may hold slashes; `{field}` and `{field=*}`
    fill exactly one segment.
    """

    field: str
    spans: bool = False


PathPart = str | Var


class PathValueError(QmtlError):
    """A field bound to the path holds a value no request can carry; raised before sending.

    Empty values, `/` in a single-segment variable, and `.` or `..` as a segment: the server
    refuses each with 400 E_INVALID_ARGUMENT, so the client does not send them (and an older
    server, which would route `a/status` to another operation, never sees them). Status 0
    (nothing was sent), code E_INVALID_ARGUMENT, `details["parameter"]` names the field as
    the server would (its JSON name, dotted when nested).
    """

    def __init__(self, parameter: str, field: str, reason: str) -> None:
        super().__init__(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"path parameter {parameter!r} (field {field}) {reason}",
            details={"parameter": parameter},
        )
        self.status = 0


def field_path(msg: message.Message, dotted: str) -> tuple[message.Message, str]:
    """The message holding the last field of `dotted`, and that field's name."""
    *parents, last = dotted.split(".")
    for name in parents:
        msg = getattr(msg, name)
    return msg, last


def json_path(desc: Any, dotted: str) -> list[str]:
    """The JSON names along `dotted`; `desc` is a message Descriptor (upb's at run time)."""
    names = []
    for name in dotted.split("."):
        fld = desc.fields_by_name[name]
        names.append(fld.json_name)
        if fld.message_type is not None:
            desc = fld.message_type
    return names


def _format_value(fld: descriptor.FieldDescriptor, value: Any) -> str:
    if fld.type == descriptor.FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if fld.enum_type is not None:
        known = fld.enum_type.values_by_number.get(value)
        return known.name if known is not None else str(value)
    if isinstance(value, message.Message):
        # Timestamp, Duration and FieldMask: the only messages a path can bind.
        return str(value.ToJsonString())  # type: ignore[attr-defined]
    if isinstance(value, bytes):
        return base64.urlsafe_b64encode(value).decode("ascii")
    return str(value)


def _check(request: message.Message, var: Var, text: str) -> None:
    if not text:
        reason = "is bound to the path and must not be empty"
    elif not var.spans and "/" in text:
        reason = f"must not contain '/' (got {text!r})"
    elif "." in text and _DOT_SEGMENTS.intersection(text.split("/")):
        reason = f"must not be a dot segment ('.' or '..', got {text!r})"
    else:
        return
    parameter = ".".join(json_path(request.DESCRIPTOR, var.field))
    raise PathValueError(parameter, var.field, reason)


def build_path(parts: Iterable[PathPart], request: message.Message) -> tuple[str, set[str]]:
    """The path with each Var replaced by the request's value, and the fields it bound.

    Values are percent-encoded except `:` (node ids read `blake3:<hex>`) and, for spanning
    variables, `/`. PathValueError before anything is sent for a value the server would
    refuse: empty, `/` in a single-segment variable, or a `.`/`..` segment.
    """
    pieces: list[str] = []
    bound: set[str] = set()
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
            continue
        holder, name = field_path(request, part.field)
        text = _format_value(holder.DESCRIPTOR.fields_by_name[name], getattr(holder, name))
        _check(request, part, text)
        bound.add(part.field)
        pieces.append(quote(text, safe=":/" if part.spans else ":"))
    return "".join(pieces), bound
