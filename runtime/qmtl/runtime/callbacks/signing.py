"""Signing callback requests, and the helper a receiver verifies them with.

One header carries the signature (docs/operations/callbacks.md, "Headers"):

    QMTL-Signature: t=<unix seconds>,k=<key id>,v1=<hex HMAC-SHA256>

where the HMAC is keyed by the secret named `k` and taken over the ASCII bytes of `t`, a dot,
then the raw request body. Binding the time into the MAC is what lets a receiver refuse an old
request replayed verbatim; the key id lets both sides hold two secrets while one is rotated.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import InvalidSigningKeyError, SignatureError

SIGNATURE_HEADER = "QMTL-Signature"
SCHEME = "v1"

MAX_AGE = 300.0
"""A request signed longer ago than this (seconds) is refused as a replay."""
MAX_FUTURE_SKEW = 30.0
"""How far ahead of the receiver's clock a signing time may be: clocks drift, but a request
from further in the future would stay replayable for longer than MAX_AGE."""

MIN_SECRET_BYTES = 32
"""Shortest secret accepted: HMAC-SHA256's own output size, so the key is not the weak link."""

# Printable, comma- and '='-free, so a key id never breaks the header's syntax.
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# 1 to 12 digits: seconds up to year 33658, and no int() on an attacker's megabyte of digits.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
MAX_HEADER_LENGTH = 512
"""Longer header values are refused unparsed (the real one is about 100 characters)."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A shared secret and the id that names it in the signature header."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.key_id):
            raise InvalidSigningKeyError(
                f"key id {self.key_id!r} must be 1 to 64 of [A-Za-z0-9._-]", field="key_id"
            )
        if len(self.secret) < MIN_SECRET_BYTES:
            raise InvalidSigningKeyError(
                f"the secret of key {self.key_id!r} has {len(self.secret)} bytes, "
                f"fewer than {MIN_SECRET_BYTES}",
                field="secret",
            )


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """What a valid signature said: when it was made and with which key."""

    timestamp: int
    key_id: str


def signed_payload(timestamp: int, body: bytes) -> bytes:
    return f"{timestamp}.".encode("ascii") + body


def compute_signature(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, signed_payload(timestamp, body), hashlib.sha256).hexdigest()


def signature_header(key: SigningKey, body: bytes, timestamp: int) -> str:
    digest = compute_signature(key.secret, timestamp, body)
    return f"t={timestamp},k={key.key_id},{SCHEME}={digest}"


def sign(key: SigningKey, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The headers that sign `body` at `now` (default: the current time)."""
    timestamp = int(time.time() if now is None else now)
    return {SIGNATURE_HEADER: signature_header(key, body, timestamp)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, case-insensitively even when `headers` is a plain dict."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def _parse(value: str) -> tuple[int, str, str]:
    if len(value) > MAX_HEADER_LENGTH:
        raise SignatureError(f"{SIGNATURE_HEADER} is too long", reason="malformed")
    fields: dict[str, str] = {}
    for part in value.split(","):
        name, sep, item = part.strip().partition("=")
        if not sep or name in fields:
            raise SignatureError(
                f"{SIGNATURE_HEADER} must be t=<seconds>,k=<key id>,v1=<hex>", reason="malformed"
            )
        fields[name] = item
    # Fields other than t, k and v1 are ignored: room for a later scheme next to v1.
    timestamp, key_id, digest = fields.get("t", ""), fields.get("k", ""), fields.get(SCHEME, "")
    if not (
        _TIMESTAMP.fullmatch(timestamp)
        and _KEY_ID.fullmatch(key_id)
        and _HEX_DIGEST.fullmatch(digest)
    ):
        raise SignatureError(
            f"{SIGNATURE_HEADER} must be t=<seconds>,k=<key id>,v1=<64 hex digits>",
            reason="malformed",
        )
    return int(timestamp), key_id, digest


def verify(
    headers: Mapping[str, str],
    body: bytes,
    keys: Mapping[str, bytes],
    *,
    now: float | None = None,
    max_age: float = MAX_AGE,
    max_future_skew: float = MAX_FUTURE_SKEW,
) -> VerifiedSignature:
    """Checks a received callback request; raises SignatureError (answer 401) unless the
    `QMTL-Signature` header is present and well formed, names a key in `keys` (key id ->
    secret), matches `body` under that secret (constant-time), and was made no more than
    `max_age` seconds before `now` nor more than `max_future_skew` after it.

    `body` must be the raw bytes received, before any decoding. A valid request can still be
    replayed within `max_age`: receivers drop duplicates by `Event.id` as well.
    """
    value = _header(headers, SIGNATURE_HEADER)
    if value is None:
        raise SignatureError(f"no {SIGNATURE_HEADER} header", reason="missing")
    timestamp, key_id, digest = _parse(value)
    secret = keys.get(key_id)
    if secret is None:
        raise SignatureError(f"unknown signing key {key_id!r}", reason="unknown_key")
    expected = compute_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected, digest):
        raise SignatureError("the signature does not match the body", reason="mismatch")
    current = time.time() if now is None else now
    if timestamp < current - max_age:
        raise SignatureError(
            f"signed {current - timestamp:.0f}s ago, more than {max_age:g}s: refused as a replay",
            reason="expired",
        )
    if timestamp > current + max_future_skew:
        raise SignatureError(
            f"signed {timestamp - current:.0f}s in the future, more than {max_future_skew:g}s",
            reason="future",
        )
    return VerifiedSignature(timestamp, key_id)
