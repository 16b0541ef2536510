"""The fuzz targets: one property per parser that reads untrusted bytes, shared by every runner.

The property is the same everywhere: any input gives a valid result or the typed QmtlError
with the 4xx code that parser owns, never any other exception (which the HTTP layer would turn
into a 500). Each `check_*` function states it for structured input (hypothesis draws that);
each target in TARGETS reads one flat byte string (what atheris mutates and what the corpus
files hold) into the same structured input and calls the same `check_*` function, so
hypothesis, atheris and the corpus replay hold the parsers to one property.

Byte layout of a target input, so that a corpus file means the same input to every runner:
- decode_json, decode_protobuf: bytes 0-1 pick the request message (see `Ring`), the rest is
  the body.
- query: bytes 0-1 pick the route binding (see `Ring`), the rest is the raw query string.
- negotiation: the whole input, decoded as latin-1 like an ASGI header, is both an Accept
  and a Content-Type value.
- token: byte 0 even, the rest (latin-1) is the bearer token string; byte 0 odd, the rest
  is the claims bytes, signed with TOKEN_SECRET into a token that then has a valid MAC.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import importlib
import zlib
from collections.abc import Callable, Coroutine, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format, message, message_factory

import qmtl
from qmtl.runtime import codec
from qmtl.runtime.auth import HmacTokenVerifier, Principal
from qmtl.runtime.errors import Code, ErrorCode, QmtlError
from qmtl.runtime.http.server import Binding
from tests.pb2_modules import generated_pb2_modules

Target = Callable[[bytes], None]


class PropertyViolation(AssertionError):
    """A parser answered, but not as its property allows."""


class UnwritableRequest(PropertyViolation):
    """A body decoded to a request that the other encoding cannot carry (a 500 in a handler)."""


def _expect(exc: QmtlError, allowed: frozenset[Code], what: str) -> None:
    """`exc` is fine if it is one of the codes `what` may raise, each with a 4xx status."""
    if exc.code not in allowed or not 400 <= exc.http_status < 500:
        raise PropertyViolation(
            f"{what} raised {exc.wire_code} (HTTP {exc.http_status}); allowed: "
            + ", ".join(sorted(ErrorCode.Name(code) for code in allowed))
        ) from exc


# -- what the targets parse: found from the generated code, so a new rpc is fuzzed at once -----


def _request_types() -> tuple[type[message.Message], ...]:
    found = {
        method.input_type.full_name: message_factory.GetMessageClass(method.input_type)
        for module in generated_pb2_modules()
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    return tuple(found[name] for name in sorted(found))


def _http_modules() -> Iterator[Any]:
    for root in map(Path, qmtl.__path__):
        for path in sorted(root.rglob("*_http.py")):
            dotted = ".".join(("qmtl", *path.relative_to(root).with_suffix("").parts))
            yield importlib.import_module(dotted)


def _bindings() -> tuple[tuple[str, Binding[Any]], ...]:
    found = {
        f"{module.__name__}.{name}": value
        for module in _http_modules()
        for name, value in vars(module).items()
        if isinstance(value, Binding)
    }
    return tuple(sorted(found.items()))


class Ring:
    """Picks one of several named things from two selector bytes, stably as the set grows.

    Each name sits at the point crc32(name) mod 2^16 of a ring (the next free point if that
    one is taken) and a selector picks the first name at or after it. A name added by a new
    rpc takes over only the selectors just before its own point, so the committed corpus
    files keep exercising the request they were written for.
    """

    def __init__(self, names: Iterable[str]) -> None:
        taken: dict[int, str] = {}
        for name in sorted(names):
            point = zlib.crc32(name.encode()) & 0xFFFF
            while point in taken:
                point = (point + 1) & 0xFFFF
            taken[point] = name
        self._points = sorted(taken)
        self._names = [taken[point] for point in self._points]
        self.selectors = {name: point.to_bytes(2, "big") for point, name in taken.items()}

    def pick(self, selector: bytes) -> str:
        index = bisect.bisect_left(self._points, int.from_bytes(selector[:2], "big"))
        return self._names[index % len(self._names)]


REQUEST_TYPES = {cls.DESCRIPTOR.full_name: cls for cls in _request_types()}
BINDINGS = dict(_bindings())
TYPE_RING = Ring(REQUEST_TYPES)
BINDING_RING = Ring(BINDINGS)


# -- body decoding -------------------------------------------------------------------------

_DECODE_ERRORS = frozenset({ErrorCode.ERROR_CODE_MALFORMED_BODY})


def check_decode(
    cls: type[message.Message], data: bytes, encoding: codec.Encoding
) -> message.Message | None:
    """`data` decodes to a `cls` that both encodings can carry back, or is a 400."""
    try:
        decoded = codec.decode(cls, data, encoding)
    except QmtlError as exc:
        _expect(exc, _DECODE_ERRORS, f"decode({cls.DESCRIPTOR.full_name}, {encoding.name})")
        return None
    if not isinstance(decoded, cls):
        raise PropertyViolation(f"decode returned {type(decoded).__name__}, not {cls.__name__}")
    # A request the server accepted is one a handler may log, forward (the Gateway hands the
    # DAG to DAG Manager) or echo back, in either encoding.
    for back in codec.Encoding:
        try:
            codec.encode(decoded, back)
        except (json_format.SerializeToJsonError, ValueError, OverflowError) as exc:
            raise UnwritableRequest(f"decoded, but not writable as {back.name}: {exc}") from exc
    return decoded


def _decoder(encoding: codec.Encoding) -> Target:
    def target(data: bytes) -> None:
        if len(data) < 2:
            return
        check_decode(REQUEST_TYPES[TYPE_RING.pick(data)], data[2:], encoding)

    target.__name__ = f"decode_{encoding.name.lower()}"
    return target


decode_json = _decoder(codec.Encoding.JSON)
decode_protobuf = _decoder(codec.Encoding.PROTOBUF)


# -- query strings ---------------------------------------------------------------------------

_QUERY_ERRORS = frozenset({ErrorCode.ERROR_CODE_INVALID_ARGUMENT, ErrorCode.ERROR_CODE_VALIDATION})
# A path value every path parser (string, integers, a declared enum number) accepts, so the
# query string is what gets exercised.
PATH_VALUE = "1"


def check_query(binding: Binding[Any], query_string: bytes) -> message.Message | None:
    """A raw query string builds the route's request, or is a 400/422 naming why."""
    path_values = {"__".join(param.path): PATH_VALUE for param in binding.path}
    try:
        built: message.Message = binding.from_parameters(path_values, query_string)
    except QmtlError as exc:
        _expect(exc, _QUERY_ERRORS, f"query {binding.request.DESCRIPTOR.full_name}")
        return None
    expected: type[message.Message] = binding.request
    if not isinstance(built, expected):
        raise PropertyViolation(f"built {type(built).__name__}, not {expected.__name__}")
    for back in codec.Encoding:
        codec.encode(built, back)
    return built


def query(data: bytes) -> None:
    if len(data) < 2:
        return
    check_query(BINDINGS[BINDING_RING.pick(data)], data[2:])


# -- content negotiation --------------------------------------------------------------------


_JSON_RANGES = (codec.JSON, "application/*", "*/*")


def check_negotiation(value: str) -> None:
    """`value` as Accept: an encoding or 406; as Content-Type: an encoding or 415.

    An error body's encoding is the reply's, JSON when no reply encoding is acceptable; a
    declared body encoding is one the value names exactly.
    """
    lowered = value.lower()
    try:
        chosen: codec.Encoding | None = codec.negotiate(value)
    except QmtlError as exc:
        _expect(exc, frozenset({ErrorCode.ERROR_CODE_NOT_ACCEPTABLE}), f"negotiate({value!r})")
        chosen = None
    for_error = codec.negotiate_for_error(value)
    expected_for_error = codec.Encoding.JSON if chosen is None else chosen
    if for_error is not expected_for_error:
        raise PropertyViolation(
            f"Accept {value!r}: an error body would be {for_error}, a reply {chosen}"
        )
    # JSON wins no tie, so it needs a range of its own: its name, or a wildcard weighted
    # above protobuf's own range.
    if chosen is codec.Encoding.JSON and not any(r in lowered for r in _JSON_RANGES):
        raise PropertyViolation(f"Accept {value!r} chose JSON without a range that allows it")
    try:
        declared = codec.body_encoding(value)
    except QmtlError as exc:
        _expect(
            exc,
            frozenset({ErrorCode.ERROR_CODE_UNSUPPORTED_MEDIA_TYPE}),
            f"body_encoding({value!r})",
        )
        return
    if declared.media_type not in lowered:
        raise PropertyViolation(f"Content-Type {value!r} declared {declared} without naming it")


def negotiation(data: bytes) -> None:
    check_negotiation(data.decode("latin-1"))


# -- service tokens -------------------------------------------------------------------------

TOKEN_SECRET = b"fuzz-token-secret-0123456789abcdef"
# A fixed clock keeps every run's verdict on a token the same, whatever day it is.
TOKEN_CLOCK = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN_VERIFIER = HmacTokenVerifier(TOKEN_SECRET, clock=lambda: TOKEN_CLOCK)


def _run_sync(coroutine: Coroutine[Any, Any, Principal]) -> Principal:
    # verify() awaits nothing; stepping it once costs far less than an event loop per input.
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: Principal = done.value
        return result
    coroutine.close()
    raise PropertyViolation("HmacTokenVerifier.verify suspended; it was expected to do no I/O")


def check_token(token: str) -> Principal | None:
    """A bearer token verifies to a Principal or is the typed 401, never anything else."""
    try:
        principal = _run_sync(TOKEN_VERIFIER.verify(token))
    except QmtlError as exc:
        _expect(exc, frozenset({ErrorCode.ERROR_CODE_UNAUTHENTICATED}), "verify")
        return None
    if not isinstance(principal, Principal):
        raise PropertyViolation(f"verify returned {type(principal).__name__}")
    return principal


def signed_token(claims: bytes, secret: bytes = TOKEN_SECRET) -> str:
    """`claims` as a token with a valid MAC, whatever the claims bytes are."""
    mac = hmac.new(secret, claims, hashlib.sha256).digest()
    return ".".join(base64.urlsafe_b64encode(part).rstrip(b"=").decode() for part in (claims, mac))


def token(data: bytes) -> None:
    if not data:
        return
    body = data[1:]
    check_token(signed_token(body) if data[0] % 2 else body.decode("latin-1"))


TARGETS: dict[str, Target] = {
    "decode_json": decode_json,
    "decode_protobuf": decode_protobuf,
    "query": query,
    "negotiation": negotiation,
    "token": token,
}


def tolerant(target: Target) -> Target:
    """`target`, passing over inputs that show a defect tests/fuzz/known_defects.py lists.

    For `make fuzz FUZZ_SKIP_KNOWN=1` (QMTL_FUZZ_SKIP_KNOWN=1), so that atheris searches past a
    listed defect instead of stopping at its first instance; the replay never uses it.
    """
    from tests.fuzz import known_defects  # imports this module: only once it is loaded

    def run(data: bytes) -> None:
        with known_defects.tolerated():
            target(data)

    return run
