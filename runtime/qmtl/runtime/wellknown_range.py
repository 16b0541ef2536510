"""Well-known-type values the proto3 JSON mapping can write back (docs/operations/http.md).

The binary encoding carries any int64 in a Timestamp or Duration and any double in a
google.protobuf.Value, but the JSON mapping defines only part of that: Timestamps from
0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, Durations up to +-10,000 years with
nanos of the seconds' sign, finite Value numbers. A request outside it decodes, then makes a
handler that reads it (ToDatetime) or serves it as JSON raise: a 500. `unwritable` finds such
a value anywhere in a decoded message so that codec.decode can refuse the body instead.

The text forms are checked here too (`timestamp_text_problem`, `duration_text_problem`):
protobuf's parsers read them with int()/float()/strptime and so also take offsets such as
`+99:00`, exponents in the fraction and digit separators, which RFC 3339 and the proto3 JSON
mapping do not allow.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from google.protobuf import message

# The range the proto3 JSON mapping defines (google/protobuf/timestamp.proto, duration.proto).
TIMESTAMP_MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
TIMESTAMP_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
DURATION_MAX_SECONDS = 315_576_000_000  # 10,000 years of 365.25 days
NANOS_PER_SECOND = 1_000_000_000

_TIMESTAMP = "google.protobuf.Timestamp"
_DURATION = "google.protobuf.Duration"
_VALUE = "google.protobuf.Value"
_STRUCT = "google.protobuf.Struct"
_LIST_VALUE = "google.protobuf.ListValue"

# RFC 3339 date-time, as the proto3 JSON mapping reads it: upper-case T and Z, 1 to 9 fraction
# digits, an offset of at most 23:59. ASCII digits only ([0-9], not \d).
_TIMESTAMP_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
# Seconds with an optional sign and 1 to 9 fraction digits, then `s`.
_DURATION_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]{1,9})?s")


def timestamp_text_problem(text: str) -> str | None:
    """Why `text` is not an RFC 3339 timestamp of the proto3 JSON mapping, or None.

    The range (years 1 to 9999) is left to protobuf's parser, which checks it.
    """
    if _TIMESTAMP_TEXT.fullmatch(text):
        return None
    return (
        "not an RFC 3339 timestamp such as 2026-01-02T03:04:05.5Z (1 to 9 fraction "
        "digits, offset Z or +-HH:MM of at most 23:59)"
    )


def duration_text_problem(text: str) -> str | None:
    """Why `text` is not a proto3 JSON duration (`-1.5s`), or None; the range is protobuf's."""
    if _DURATION_TEXT.fullmatch(text):
        return None
    return "not a duration such as 1.5s (decimal seconds, at most 9 fraction digits, then s)"


# -- decoded messages --------------------------------------------------------------------

_Check = Callable[[Any, str], "str | None"]


def _timestamp(value: Any, where: str) -> str | None:
    seconds, nanos = value.seconds, value.nanos
    if not TIMESTAMP_MIN_SECONDS <= seconds <= TIMESTAMP_MAX_SECONDS:
        return f"{where}: Timestamp seconds {seconds} is outside 0001-01-01..9999-12-31"
    if not 0 <= nanos < NANOS_PER_SECOND:
        return f"{where}: Timestamp nanos {nanos} is outside [0, 999999999]"
    return None


def _duration(value: Any, where: str) -> str | None:
    seconds, nanos = value.seconds, value.nanos
    if not -DURATION_MAX_SECONDS <= seconds <= DURATION_MAX_SECONDS:
        return f"{where}: Duration seconds {seconds} is beyond +-{DURATION_MAX_SECONDS}"
    if not -NANOS_PER_SECOND < nanos < NANOS_PER_SECOND:
        return f"{where}: Duration nanos {nanos} is outside [-999999999, 999999999]"
    if (seconds < 0 < nanos) or (nanos < 0 < seconds):
        return f"{where}: Duration seconds {seconds} and nanos {nanos} differ in sign"
    return None


def _value(value: Any, where: str) -> str | None:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            return f"{where}: {number} is not a finite number (JSON has no NaN or Infinity)"
    elif kind == "struct_value":
        return _struct(value.struct_value, where)
    elif kind == "list_value":
        return _list_value(value.list_value, where)
    return None


def _struct(value: Any, where: str) -> str | None:
    for key, item in value.fields.items():
        problem = _value(item, f"{where}[{key!r}]")
        if problem is not None:
            return problem
    return None


def _list_value(value: Any, where: str) -> str | None:
    for position, item in enumerate(value.values):
        problem = _value(item, f"{where}[{position}]")
        if problem is not None:
            return problem
    return None


_CHECKS: dict[str, _Check] = {
    _TIMESTAMP: _timestamp,
    _DURATION: _duration,
    _VALUE: _value,
    _STRUCT: _struct,
    _LIST_VALUE: _list_value,
}

# How a field that may hold a checked value is walked.
_SINGULAR, _REPEATED, _MAP = 0, 1, 2

# Per message type (full name): the fields that can lead to a checked type, as
# (proto name, JSON name, how to walk it). Empty for most request types, which is what keeps
# decoding them as fast as before: nothing is walked.
_Plan = tuple[tuple[str, str, int], ...]
_plans: dict[str, _Plan] = {}
_reaches: dict[str, bool] = {}


def _targets(field: Any) -> Any:
    """The message type a field's values have (a map's value type), or None for scalars."""
    target = field.message_type
    if target is not None and target.GetOptions().map_entry:
        return target.fields_by_name["value"].message_type
    return target


def _can_reach(desc: Any) -> bool:
    # A search of the message graph from `desc`; recursive types (Value <-> Struct, a tree
    # of nodes) are visited once each. Computed once per type.
    name = desc.full_name
    known = _reaches.get(name)
    if known is not None:
        return known
    seen: set[str] = set()
    stack = [desc]
    found = False
    while stack:
        current = stack.pop()
        if current.full_name in seen:
            continue
        seen.add(current.full_name)
        if current.full_name in _CHECKS:
            found = True
            break
        for field in current.fields:
            target = _targets(field)
            if target is not None and target.full_name not in seen:
                stack.append(target)
    _reaches[name] = found
    return found


def _plan(desc: Any) -> _Plan:
    plan = _plans.get(desc.full_name)
    if plan is None:
        steps = []
        for field in desc.fields:
            target = _targets(field)
            if target is None or not _can_reach(target):
                continue
            if field.message_type.GetOptions().map_entry:
                how = _MAP
            elif field.is_repeated:
                how = _REPEATED
            else:
                how = _SINGULAR
            steps.append((field.name, field.json_name, how))
        plan = tuple(steps)
        _plans[desc.full_name] = plan
    return plan


def unwritable(msg: message.Message) -> str | None:
    """Where and why `msg` holds a value the proto3 JSON mapping cannot write, or None.

    Looks through message fields, repeated elements and map values at any depth, and into
    Struct/ListValue contents. (No request carries an Any, whose contents are not looked at.)
    """
    # A first pass that only answers yes or no: building every path costs more than the walk
    # itself (~40% of it on a 1,000-node DAG with Struct metadata), and is needed only once
    # something is wrong.
    values: list[Any] = []
    if _bad_time(msg, values) or _bad_values(values):
        return _walk(msg, "")
    return None


def _bad_time(msg: Any, values: list[Any]) -> bool:
    """Whether a Timestamp/Duration in `msg` is out of range; collects the Values to check."""
    name = msg.DESCRIPTOR.full_name
    if name == _TIMESTAMP:
        return _timestamp(msg, "") is not None
    if name == _DURATION:
        return _duration(msg, "") is not None
    if name == _VALUE:
        values.append(msg)
    elif name == _STRUCT:
        values.extend(msg.fields.values())
    elif name == _LIST_VALUE:
        values.extend(msg.values)
    else:
        for field_name, _, how in _plan(msg.DESCRIPTOR):
            if how == _SINGULAR:
                if msg.HasField(field_name) and _bad_time(getattr(msg, field_name), values):
                    return True
            else:
                items = getattr(msg, field_name)
                for item in items.values() if how == _MAP else items:
                    if _bad_time(item, values):
                        return True
    return False


def _bad_values(stack: list[Any]) -> bool:
    # Iterative: a Struct may nest as deep as the binary decoder allows.
    pop, extend = stack.pop, stack.extend
    while stack:
        value = pop()
        kind = value.WhichOneof("kind")
        if kind == "number_value":
            if not math.isfinite(value.number_value):
                return True
        elif kind == "struct_value":
            extend(value.struct_value.fields.values())
        elif kind == "list_value":
            extend(value.list_value.values)
    return False


def _walk(msg: Any, where: str) -> str | None:
    name = msg.DESCRIPTOR.full_name
    check = _CHECKS.get(name)
    if check is not None:
        return check(msg, where or "the body")
    for field_name, label, how in _plan(msg.DESCRIPTOR):
        path = f"{where}.{label}" if where else label
        problem: str | None = None
        if how == _SINGULAR:
            if msg.HasField(field_name):
                problem = _walk(getattr(msg, field_name), path)
        elif how == _REPEATED:
            for position, item in enumerate(getattr(msg, field_name)):
                problem = _walk(item, f"{path}[{position}]")
                if problem is not None:
                    break
        else:
            for key, item in getattr(msg, field_name).items():
                problem = _walk(item, f"{path}[{key!r}]")
                if problem is not None:
                    break
        if problem is not None:
            return problem
    return None
