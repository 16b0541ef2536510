"""Request messages from path and query parameters, as docs/api/HTTP.md states the rules.

The generators know every request field statically, so they emit, per route, a table of
`Param`s (accepted names, field path, parser, how the value is stored); this module only runs
those tables. Parsers are strict: a value that the proto3 JSON mapping would not accept for
the field is a 400 naming the parameter, never a silent default.
"""

from __future__ import annotations

import base64
import binascii
import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from google.protobuf import (
    descriptor,
    descriptor_pool,
    duration_pb2,
    field_mask_pb2,
    message,
    timestamp_pb2,
)

from qmtl.runtime import wellknown_range
from qmtl.runtime.errors import ErrorCode, QmtlError

Parser = Callable[[str], Any]

# Well above any real request; more is refused before parsing, so a flood costs little.
MAX_QUERY_PARAMETERS = 1000


def bad_parameter(name: str, message_text: str) -> QmtlError:
    """The 400 E_INVALID_ARGUMENT for a parameter that is unknown or does not parse."""
    return QmtlError(
        ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
        f"query parameter {name!r}: {message_text}",
        details={"parameter": name},
    )


class InvalidValue(ValueError):
    """A value that does not parse; the caller adds the parameter's name."""


# -- leaf parsers: str -> the Python value the field takes --------------------------------

_INTEGER = re.compile(r"-?[0-9]+")
# JSON number syntax; Python's float() would also take "1_0", " 1" and "infinity".
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_FLOAT_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_FLOAT32_MAX = 3.4028234663852886e38


def _integer(low: int, high: int) -> Parser:
    def parse(value: str) -> int:
        if not _INTEGER.fullmatch(value):
            raise InvalidValue(f"{value!r} is not a decimal integer")
        number = int(value)
        if not low <= number <= high:
            raise InvalidValue(f"{value} is out of range [{low}, {high}]")
        return number

    return parse


parse_int32 = _integer(-(2**31), 2**31 - 1)
parse_int64 = _integer(-(2**63), 2**63 - 1)
parse_uint32 = _integer(0, 2**32 - 1)
parse_uint64 = _integer(0, 2**64 - 1)


def parse_double(value: str) -> float:
    if value in _FLOAT_SPECIAL:
        return _FLOAT_SPECIAL[value]
    if not _FLOAT.fullmatch(value):
        raise InvalidValue(f"{value!r} is not a number")
    number = float(value)
    if math.isinf(number):
        raise InvalidValue(f"{value} is out of range")
    return number


def parse_float(value: str) -> float:
    number = parse_double(value)
    if math.isfinite(number) and abs(number) > _FLOAT32_MAX:
        raise InvalidValue(f"{value} is out of range for a 32-bit float")
    return number


def parse_bool(value: str) -> bool:
    if value == "true":
        return True
    if value == "false":
        return False
    raise InvalidValue(f"{value!r} is not true or false")


def parse_string(value: str) -> str:
    return value


def parse_bytes(value: str) -> bytes:
    # The JSON mapping writes standard base64 and reads the URL-safe alphabet too.
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue(f"{value!r} is not base64") from None


WellKnown = TypeVar(
    "WellKnown", timestamp_pb2.Timestamp, duration_pb2.Duration, field_mask_pb2.FieldMask
)


def _from_json_string(cls: type[WellKnown], value: str, form: str) -> WellKnown:
    # These well-known types have a JSON string form; a query parameter uses the same one.
    parsed = cls()
    try:
        parsed.FromJsonString(value)
    except (ValueError, OverflowError) as exc:
        # OverflowError: a fraction protobuf reads with float(), such as `.3e8558` (a 500
        # once); parse_timestamp's grammar now refuses it first, this keeps any other a 400.
        raise InvalidValue(f"{value!r} is not {form} ({exc})") from None
    return parsed


def parse_timestamp(value: str) -> timestamp_pb2.Timestamp:
    # protobuf's parser alone takes `+99:00` offsets and exponents in the fraction; it does
    # check the range (years 1 to 9999).
    problem = wellknown_range.timestamp_text_problem(value)
    if problem is not None:
        raise InvalidValue(f"{value!r} is {problem}")
    return _from_json_string(timestamp_pb2.Timestamp, value, "an RFC 3339 timestamp")


def parse_duration(value: str) -> duration_pb2.Duration:
    # As for timestamps: the grammar here, the range (+-315,576,000,000 s) in protobuf.
    problem = wellknown_range.duration_text_problem(value)
    if problem is not None:
        raise InvalidValue(f"{value!r} is {problem}")
    return _from_json_string(duration_pb2.Duration, value, "a duration such as 1.5s")


def parse_field_mask(value: str) -> field_mask_pb2.FieldMask:
    return _from_json_string(field_mask_pb2.FieldMask, value, "a field mask")


def enum_parser(full_name: str) -> Parser:
    """A parser for the enum `full_name`: a value name, or the number of a declared value.

    Undeclared numbers are refused although proto3 enums are open: over HTTP they are far
    more likely a client's mistake than a value from a newer schema.
    """
    pool = descriptor_pool.Default()  # type: ignore[no-untyped-call]
    enum_type: descriptor.EnumDescriptor = pool.FindEnumTypeByName(full_name)
    by_name: dict[str, int] = {value.name: value.number for value in enum_type.values}
    numbers = frozenset(by_name.values())

    def parse(value: str) -> int:
        if value in by_name:
            return by_name[value]
        if _INTEGER.fullmatch(value) and int(value) in numbers:
            return int(value)
        raise InvalidValue(f"{value!r} is not a value of {full_name}")

    return parse


# -- where a parsed value goes ---------------------------------------------------------------


class Slot(enum.Enum):
    """How a parsed value is stored in its field."""

    SCALAR = "scalar"  # singular scalar or enum: assigned
    REPEATED = "repeated"  # repeated scalar or enum: appended
    MESSAGE = "message"  # singular Timestamp, Duration, FieldMask: copied in
    REPEATED_MESSAGE = "repeated_message"  # repeated of those: added
    WRAPPER = "wrapper"  # google.protobuf.*Value: its `value` assigned
    REPEATED_WRAPPER = "repeated_wrapper"


Store = Callable[[message.Message, Any], None]


def _storer(slot: Slot, path: tuple[str, ...]) -> Store:
    # Chosen once per parameter, so that storing a value costs one call, not a chain of tests.
    *parents, name = path

    def scalar(target: message.Message, value: Any) -> None:
        setattr(target, name, value)

    def repeated(target: message.Message, value: Any) -> None:
        getattr(target, name).append(value)

    def copied(target: message.Message, value: Any) -> None:
        getattr(target, name).CopyFrom(value)

    def added(target: message.Message, value: Any) -> None:
        getattr(target, name).add().CopyFrom(value)

    def wrapped(target: message.Message, value: Any) -> None:
        getattr(target, name).value = value

    def added_wrapped(target: message.Message, value: Any) -> None:
        getattr(target, name).add(value=value)

    leaf: Store = {
        Slot.SCALAR: scalar,
        Slot.REPEATED: repeated,
        Slot.MESSAGE: copied,
        Slot.REPEATED_MESSAGE: added,
        Slot.WRAPPER: wrapped,
        Slot.REPEATED_WRAPPER: added_wrapped,
    }[slot]
    if not parents:
        return leaf

    def nested(target: message.Message, value: Any) -> None:
        for parent in parents:
            target = getattr(target, parent)
        leaf(target, value)

    return nested


@dataclass(frozen=True, slots=True)
class Param:
    """One leaf field reachable as a parameter.

    `names` are the accepted parameter names, proto3 JSON name first (`page.pageSize`), then
    the proto field name (`page.page_size`) when it differs; `path` is the field path from the
    request message (`("page", "page_size")`). `store(request, value)` puts a parsed value in.
    """

    names: tuple[str, ...]
    path: tuple[str, ...]
    parse: Parser
    slot: Slot = Slot.SCALAR
    repeated: bool = field(init=False)
    store: Store = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        repeated = self.slot in (Slot.REPEATED, Slot.REPEATED_MESSAGE, Slot.REPEATED_WRAPPER)
        object.__setattr__(self, "repeated", repeated)
        object.__setattr__(self, "store", _storer(self.slot, self.path))

    def read(self, source: message.Message) -> tuple[bool, Any]:
        """(whether the field is set, its value): for comparing a body against the path."""
        for name in self.path[:-1]:
            if not source.HasField(name):
                return False, None
            source = getattr(source, name)
        last = self.path[-1]
        value = getattr(source, last)
        if self.slot in (Slot.MESSAGE, Slot.WRAPPER):
            return source.HasField(last), value
        field_descriptor = source.DESCRIPTOR.fields_by_name[last]
        if field_descriptor.has_presence:
            return source.HasField(last), value
        return value != field_descriptor.default_value, value


@dataclass(frozen=True, slots=True)
class Required:
    """A field marked `(google.api.field_behavior) = REQUIRED`.

    `name` is its proto field path, dotted for a nested field (`page.page_size`).
    """

    name: str
    # The parameter name to report: the field's proto3 JSON name (path).
    json_name: str


def _is_set(msg: message.Message, dotted: str) -> bool:
    if "." in dotted:
        *parents, dotted = dotted.split(".")
        for parent in parents:
            if not msg.HasField(parent):
                return False
            msg = getattr(msg, parent)
    field_descriptor = msg.DESCRIPTOR.fields_by_name[dotted]
    if field_descriptor.is_repeated:
        return len(getattr(msg, dotted)) > 0
    if field_descriptor.has_presence:
        return msg.HasField(dotted)
    # Without presence, the default value is indistinguishable from "not sent".
    return bool(getattr(msg, dotted) != field_descriptor.default_value)


def _missing(item: Required) -> QmtlError:
    return QmtlError(
        ErrorCode.ERROR_CODE_VALIDATION,
        f"{item.json_name} is required",
        details={"field": item.json_name},
    )


def check_required(msg: message.Message, required: Iterable[Required]) -> None:
    """Raises the 422 E_VALIDATION for the first REQUIRED field `msg` lacks."""
    for item in required:
        if not _is_set(msg, item.name):
            raise _missing(item)


Check = Callable[[message.Message], None]


def _presence(request: type[message.Message], dotted: str) -> Callable[[message.Message], bool]:
    """`_is_set(msg, dotted)` for messages of type `request`, its field's kind looked up now."""
    if "." in dotted:
        return lambda msg: _is_set(msg, dotted)
    field_descriptor = request.DESCRIPTOR.fields_by_name[dotted]
    if field_descriptor.is_repeated:
        return lambda msg: len(getattr(msg, dotted)) > 0
    if field_descriptor.has_presence:
        return lambda msg: msg.HasField(dotted)
    default = field_descriptor.default_value
    return lambda msg: bool(getattr(msg, dotted) != default)


def required_check(request: type[message.Message], required: Sequence[Required]) -> Check:
    """`check_required` for messages of type `request`, each field's descriptor read once.

    Built once per route: looking a field's descriptor up on every request costs more than
    the presence test itself.
    """
    tests = tuple((_presence(request, item.name), item) for item in required)

    def check(msg: message.Message) -> None:
        for is_set, item in tests:
            if not is_set(msg):
                raise _missing(item)

    return check


@dataclass(frozen=True, slots=True)
class QueryParams:
    """The query parameters of one route, indexed by every accepted name."""

    params: Sequence[Param]
    by_name: Mapping[str, Param] = field(init=False)

    def __post_init__(self) -> None:
        index: dict[str, Param] = {}
        for param in self.params:
            for name in param.names:
                index[name] = param
        object.__setattr__(self, "by_name", index)

    def parse_into(self, target: message.Message, query_string: bytes) -> None:
        """Stores every parameter of a raw query string in `target`."""
        if not query_string:
            return
        by_name = self.by_name
        seen: set[tuple[str, ...]] = set()
        for name, value in split_query(query_string):
            param = by_name.get(name)
            if param is None:
                raise bad_parameter(name, "unknown parameter")
            if not param.repeated:
                if param.path in seen:
                    raise bad_parameter(name, "given more than once")
                seen.add(param.path)
            try:
                param.store(target, param.parse(value))
            except InvalidValue as exc:
                raise bad_parameter(name, str(exc)) from None


def split_query(query_string: bytes) -> list[tuple[str, str]]:
    """`a=1&b=x%20y` -> [("a", "1"), ("b", "x y")], as form decoding reads it (`+` is a space).

    Blank values are kept (`a=` is ""); empty pieces (`a=1&&b=2`) are skipped. Invalid UTF-8 or
    more than MAX_QUERY_PARAMETERS pieces is a 400. Written out instead of urllib's parse_qsl,
    which costs several times more on the usual query without escapes.
    """
    pairs: list[tuple[str, str]] = []
    try:
        if b"%" in query_string or b"+" in query_string:
            raw_pieces = query_string.split(b"&")
            _check_count(len(raw_pieces))
            for raw in raw_pieces:
                if raw:
                    raw_name, _, raw_value = raw.partition(b"=")
                    pairs.append((_unescape(raw_name), _unescape(raw_value)))
        else:
            pieces = query_string.decode().split("&")
            _check_count(len(pieces))
            for piece in pieces:
                if piece:
                    name, _, value = piece.partition("=")
                    pairs.append((name, value))
    except UnicodeDecodeError as exc:
        raise QmtlError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT, f"query string is not UTF-8: {exc}"
        ) from None
    return pairs


def _check_count(count: int) -> None:
    if count > MAX_QUERY_PARAMETERS:
        raise QmtlError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"more than {MAX_QUERY_PARAMETERS} query parameters",
        )


def _unescape(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode()


_DOT_SEGMENTS = frozenset({".", ".."})


def parse_path_into(
    target: message.Message, params: Sequence[Param], values: Mapping[str, Any], *, body: bool
) -> None:
    """Stores the path parameters (keyed by `"__".join(param.path)`) in `target`.

    With `body`, `target` was decoded from the request body: a field the body also sets must
    agree with the path (400 otherwise). A value that is, or for a `**` parameter holds, a
    dot segment (`.` or `..`, however it was encoded) is a 400: proxies and clients resolve
    those against the path, so such an id could never be addressed reliably.
    """
    for param in params:
        key = "__".join(param.path)
        raw = str(values[key])
        name = param.names[0]
        if "." in raw and _DOT_SEGMENTS.intersection(raw.split("/")):
            raise QmtlError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                f"path parameter {name!r}: {raw!r} is a dot segment ('.' or '..')",
                details={"parameter": name},
            )
        try:
            value = param.parse(raw)
        except InvalidValue as exc:
            raise QmtlError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                f"path parameter {name!r}: {exc}",
                details={"parameter": name},
            ) from None
        if body:
            present, current = param.read(target)
            if present and current != value:
                raise QmtlError(
                    ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                    f"{name} in the body ({current!r}) disagrees with the path ({value!r})",
                    details={"parameter": name},
                )
        param.store(target, value)
