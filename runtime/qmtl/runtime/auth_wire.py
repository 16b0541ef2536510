"""The strict textual and numeric forms a service token's parts must take (docs/operations/auth.md).

Kept apart from the verifier so that every way a token's text or claims can be malformed ends in
the same typed 401 here, and nothing else escapes to the HTTP layer as a 500.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from qmtl.runtime.errors import QmtlError

# ASCII only: `str.isalnum` and the `\w` class would admit non-ASCII digits and letters.
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
# google.protobuf.Timestamp's documented range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999...Z.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
_NANOS_PER_SECOND = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def not_a_token() -> QmtlError:
    return QmtlError.unauthenticated("bearer token is not a service token")


def b64encode(data: bytes) -> str:
    """The one canonical text of `data`: base64url, no padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """The bytes of `text` if it is exactly their canonical encoding, else E_UNAUTHENTICATED.

    A lenient decoder maps many strings to one credential (padding, whitespace, the `+/`
    alphabet, set unused trailing bits); refusing all but the canonical one keeps a token's
    text a stable identity for caches, logs and revocation lists.
    """
    if not _BASE64URL.fullmatch(text):
        raise not_a_token()
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # a length of 4n+1 characters encodes no bytes
        raise not_a_token() from None
    if b64encode(data) != text:
        raise not_a_token()
    return data


def timestamp_nanos(stamp: timestamp_pb2.Timestamp, name: str) -> int:
    """`stamp` as integer nanoseconds since the epoch; E_UNAUTHENTICATED if out of range.

    Integers, not datetimes: exact to the nanosecond (a lifetime one nanosecond over the
    maximum is over it) and free of datetime's overflow errors.
    """
    if not (_MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS) or not (
        0 <= stamp.nanos < _NANOS_PER_SECOND
    ):
        raise QmtlError.unauthenticated(f"service token {name} is not a valid timestamp")
    return stamp.seconds * _NANOS_PER_SECOND + stamp.nanos


def datetime_nanos(instant: datetime) -> int:
    """An aware datetime as integer nanoseconds since the epoch."""
    # Field arithmetic, not `// timedelta(...)`: a third of the cost, on every verified call.
    span = instant - _EPOCH
    return ((span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds) * 1000


def timedelta_nanos(span: timedelta) -> int:
    return span // timedelta(microseconds=1) * 1000
