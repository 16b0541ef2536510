"""The two encodings every route speaks, and how a request picks one (docs/api/HTTP.md).

`application/x-protobuf` is the message's binary encoding; `application/json` is the proto3
JSON mapping (int64 as strings, enums by name, RFC 3339 timestamps). The response encoding
follows `Accept` with q-values; when `Accept` leaves the choice open (absent, `*/*`, a tie) the
caller's `default` decides: each listener passes its own (docs/operations/serving.md: JSON on
the public one, protobuf on the internal one), protobuf when none is passed. A request body
must be declared in one of the two (415 otherwise) and must decode (400 E_MALFORMED_BODY
otherwise).
"""

from __future__ import annotations

import enum
import functools
import json
import math
import re
from typing import Any, TypeVar

from google.protobuf import json_format, message

from qmtl.runtime import json_codec, json_shape, wellknown_range
from qmtl.runtime.errors import ErrorCode, QmtlError

M = TypeVar("M", bound=message.Message)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class Encoding(enum.Enum):
    """A wire encoding of protobuf messages; the value is its media type."""

    PROTOBUF = PROTOBUF
    JSON = JSON

    @property
    def media_type(self) -> str:
        return self.value


# Specificity of the Accept range that matched: an exact type beats `application/*`, which
# beats `*/*`. A tie between our two types goes to the listener's default encoding.
_EXACT, _SUBTYPE_WILDCARD, _ANY = 3, 2, 1


# RFC 9110 section 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
# float() would also read "nan" (a weight no comparison can rank), "inf", "1e0", "1_0", " 1".
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def _media_range(item: str) -> tuple[str, float] | None:
    media, *params = (part.strip() for part in item.split(";"))
    if "/" not in media:
        return None
    quality = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            if not _QVALUE.fullmatch(value):
                return None  # a range whose weight cannot be read is ignored, not guessed
            quality = float(value)
    return media.lower(), quality


def _rank(ranges: list[tuple[str, float]], media_type: str) -> tuple[float, int]:
    """(q, specificity) of the most specific range matching `media_type`; q 0 if none does."""
    kind = media_type.split("/", 1)[0]
    best: tuple[float, int] = (0.0, 0)
    for media, quality in ranges:
        if media == media_type:
            specificity = _EXACT
        elif media == f"{kind}/*":
            specificity = _SUBTYPE_WILDCARD
        elif media == "*/*":
            specificity = _ANY
        else:
            continue
        if specificity > best[1]:
            best = (quality, specificity)
    return best


@functools.lru_cache(maxsize=512)
def _choose(accept: str, default: Encoding) -> Encoding | None:
    # Cached: clients repeat the same Accept value, and parsing it costs more than the lookup.
    ranges = [r for r in map(_media_range, accept.split(",")) if r is not None]
    if not ranges:
        return default
    protobuf = _rank(ranges, PROTOBUF)
    json_rank = _rank(ranges, JSON)
    if protobuf[0] <= 0 and json_rank[0] <= 0:
        return None
    if json_rank == protobuf:
        return default  # `*/*`, `application/*` or equal weights: the client left it open
    return Encoding.JSON if json_rank > protobuf else Encoding.PROTOBUF


def negotiate(accept: str | None, *, default: Encoding = Encoding.PROTOBUF) -> Encoding:
    """The response encoding for an `Accept` value; `default` if absent, empty or `*/*`.

    `default` also settles a tie (`application/*`, equal weights); a range naming one of the
    two types over the other always wins. Raises QmtlError E_NOT_ACCEPTABLE (406) when
    neither encoding is acceptable.
    """
    if not accept:
        return default
    chosen = _choose(accept, default)
    if chosen is None:
        raise QmtlError(
            ErrorCode.ERROR_CODE_NOT_ACCEPTABLE,
            f"Accept {accept!r} allows neither {PROTOBUF} nor {JSON}",
            details={"accept": accept},
        )
    return chosen


def negotiate_for_error(accept: str | None, *, default: Encoding = Encoding.PROTOBUF) -> Encoding:
    """The encoding of an error body: as negotiated, JSON when `Accept` cannot be satisfied."""
    if not accept:
        return default
    return _choose(accept, default) or Encoding.JSON


@functools.lru_cache(maxsize=64)
def _declared(content_type: str) -> Encoding | None:
    media, *params = (part.strip() for part in content_type.split(";"))
    media = media.lower()
    if media == PROTOBUF:
        return Encoding.PROTOBUF
    if media != JSON:
        return None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return None  # the proto3 JSON mapping is UTF-8 only
    return Encoding.JSON


def body_encoding(content_type: str | None) -> Encoding:
    """The encoding a request body declares; QmtlError E_UNSUPPORTED_MEDIA_TYPE (415) if neither."""
    chosen = _declared(content_type) if content_type else None
    if chosen is None:
        # A missing header is said in words: its repr would show a client Python's `None`.
        problem = (
            f"Content-Type {content_type!r} is neither {PROTOBUF} nor {JSON}"
            if content_type
            else f"the body has no Content-Type; declare {PROTOBUF} or {JSON}"
        )
        raise QmtlError(
            ErrorCode.ERROR_CODE_UNSUPPORTED_MEDIA_TYPE,
            problem,
            details={"content_type": content_type or ""},
        )
    return chosen


# A module global: reading a member off the Enum class costs several times a global read, and
# encode runs for every body.
_PROTOBUF = Encoding.PROTOBUF


def encode(msg: message.Message, encoding: Encoding, *, emit_defaults: bool = False) -> bytes:
    """`msg` in `encoding`: binary, or compact proto3 JSON in UTF-8.

    Binary is the plain wire encoding, whose map entry order protobuf leaves unspecified (a
    decoder reads any order); bytes that must be stable (goldens, hashes, signatures: callback
    bodies, idempotency fingerprints, tokens) come from `SerializeToString(deterministic=True)`
    at those callers, never from here. JSON leaves out fields holding their default value
    (0, "", false, empty lists and maps, the first enum value), as the proto3 JSON mapping
    allows; `emit_defaults` writes them too, for clients that want every field present.
    Fields with explicit presence (messages, `optional`, oneof members) appear only when set
    either way; binary is never affected.
    """
    if encoding is _PROTOBUF:
        return msg.SerializeToString()
    generated = json_codec.lookup(msg.DESCRIPTOR)
    if generated is not None:
        return json_codec.encode(generated, msg, emit_defaults=emit_defaults)
    mapped = json_format.MessageToDict(msg, always_print_fields_with_no_presence=emit_defaults)
    return json.dumps(mapped, separators=(",", ":"), ensure_ascii=False).encode()


def decode(cls: type[M], data: bytes, encoding: Encoding, *, ignore_unknown: bool = False) -> M:
    """A `cls` decoded from `data`; QmtlError E_MALFORMED_BODY (400) if it does not decode.

    Servers keep `ignore_unknown` off so a misspelt JSON field is an error, not silently
    dropped; clients turn it on so a newer server's extra fields do not break them (binary
    decoding always keeps unknown fields).
    """
    msg = cls()
    try:
        if encoding is Encoding.PROTOBUF:
            msg.ParseFromString(data)
        else:
            # The generated codec's fast path reads only values the mapping can write back;
            # anything else goes, as the same bytes, to the reference parser.
            generated = json_codec.lookup(cls.DESCRIPTOR)
            if generated is not None and json_codec.try_decode(
                generated, data, msg, ignore_unknown
            ):
                return msg
            _parse_json(data, msg, ignore_unknown)
    except (message.DecodeError, json_format.ParseError, UnicodeDecodeError, RecursionError) as exc:
        raise _malformed(cls, encoding, str(exc)) from None
    # Binary carries any Timestamp/Duration/Value number. A JSON body's are refused while
    # parsing (_parse_json, json_format's own checks); walking it too makes the guarantee
    # decode's, not json_format's. A type that cannot hold one (most requests) is not walked.
    problem = wellknown_range.unwritable(msg)
    if problem is not None:
        raise _malformed(cls, encoding, f"{problem}, which the proto3 JSON mapping cannot carry")
    return msg


def _malformed(cls: type[message.Message], encoding: Encoding, reason: str) -> QmtlError:
    name = cls.DESCRIPTOR.full_name
    return QmtlError.malformed_body(f"body is not a valid {encoding.media_type} {name}: {reason}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # As json_format.Parse does: a repeated key is an error, not "the last one wins".
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise json_format.ParseError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> float:
    # Python's json reads NaN, Infinity and -Infinity, which JSON does not have; proto3 JSON
    # writes a non-finite float or double as the string "NaN", "Infinity" or "-Infinity".
    raise ValueError(f"{name} is not JSON (a float or double field takes the string {name!r})")


def _finite(text: str) -> float:
    # float("1e999") is inf: a number no double holds, and no JSON writer could write back.
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"number {text} is beyond the range of a double")
    return number


def _parse_json(data: bytes, msg: message.Message, ignore_unknown: bool) -> None:
    """json_format.Parse, plus json_shape's check that every message was a JSON object.

    Parse is split in two here only to keep the loaded JSON for that check.
    """
    text = data.decode("utf-8")  # UnicodeDecodeError: a malformed body, said by the caller
    try:
        loaded = json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite
        )
    except ValueError as exc:  # JSONDecodeError; a duplicate key's ParseError passes through
        raise json_format.ParseError(f"not JSON: {exc}") from None
    try:
        json_format.ParseDict(loaded, msg, ignore_unknown_fields=ignore_unknown)
    except json_format.ParseError:
        raise
    except Exception as exc:
        # As json_format.Parse does: ParseDict lets TypeError and the like out for values of
        # the wrong kind, and each means a malformed body.
        raise json_format.ParseError(f"{type(exc).__name__}: {exc}") from None
    json_shape.check(loaded, msg.DESCRIPTOR)
