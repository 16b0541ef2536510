"""Who is calling, and may they: bearer service tokens, a pluggable verifier and scope checks.

The default token (docs/api/HTTP.md) is `base64url(ServiceToken bytes) "." base64url(MAC)` with
MAC = HMAC-SHA256(secret, ServiceToken bytes). The MAC covers the exact bytes the token carries,
so verification never re-serializes the claims. `key_id` inside the claims picks the secret,
which lets keys rotate: a verifier may know several at once. The verification rules, limits and
defaults are in docs/operations/auth.md.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from google.protobuf import message, timestamp_pb2

from qmtl.api.v1 import service_token_pb2
from qmtl.runtime.auth_wire import (
    b64decode,
    b64encode,
    datetime_nanos,
    not_a_token,
    timedelta_nanos,
    timestamp_nanos,
)
from qmtl.runtime.errors import QmtlError

# How far a token's issued_at may lie ahead of the verifier's clock (the issuer's clock runs fast).
DEFAULT_CLOCK_SKEW = timedelta(seconds=60)
# The longest expires_at - issued_at a verifier accepts: a leaked token is useful at most this long.
DEFAULT_MAX_LIFETIME = timedelta(hours=24)
# Longer text is refused before any decoding; an HTTP header rarely carries more than 8 KiB.
MAX_TOKEN_LENGTH = 8192

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its subject (`sdk:alice`, `service:gateway`) and its scopes."""

    subject: str
    scopes: frozenset[str]

    def has_scopes(self, required: Iterable[str]) -> bool:
        return self.scopes.issuperset(required)


class TokenVerifier(Protocol):
    """Turns a bearer token into a Principal, or raises QmtlError E_UNAUTHENTICATED.

    Async so that a verifier may consult a key server; the default one does no I/O.
    """

    async def verify(self, token: str) -> Principal: ...


def _mac(secret: bytes, claims: bytes) -> bytes:
    return hmac.new(secret, claims, hashlib.sha256).digest()


def issue_token(
    secret: bytes,
    subject: str,
    scopes: Collection[str],
    *,
    ttl: timedelta = timedelta(hours=1),
    key_id: str = "",
    clock: Clock = utc_now,
) -> str:
    """A signed service token for `subject` with `scopes`, valid for `ttl` from `clock()`.

    A verifier refuses a `ttl` above its `max_lifetime` (DEFAULT_MAX_LIFETIME unless configured).
    """
    now = clock()
    issued_at, expires_at = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    issued_at.FromDatetime(now)
    expires_at.FromDatetime(now + ttl)
    claims = service_token_pb2.ServiceToken(
        subject=subject,
        scopes=sorted(scopes),
        issued_at=issued_at,
        expires_at=expires_at,
        key_id=key_id,
    ).SerializeToString(deterministic=True)
    return f"{b64encode(claims)}.{b64encode(_mac(secret, claims))}"


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    issued_at_ns: int
    expires_at_ns: int


class HmacTokenVerifier:
    """The default verifier: checks the HMAC-SHA256 under the claims' key, then the times.

    `keys` maps key_id to secret (a single secret is key_id ""). A token must carry both
    `issued_at` and `expires_at`: one that never expires cannot be revoked by waiting, and
    without an issue time its lifetime is unknown. It is refused when issued more than
    `clock_skew` ahead of `clock()`, when it lives longer than `max_lifetime`, and from
    `expires_at` on. Every refusal is E_UNAUTHENTICATED (401).
    """

    def __init__(
        self,
        keys: bytes | Mapping[str, bytes],
        *,
        clock: Clock = utc_now,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
        max_lifetime: timedelta = DEFAULT_MAX_LIFETIME,
    ) -> None:
        self._keys = {"": keys} if isinstance(keys, bytes) else dict(keys)
        if not self._keys or not all(self._keys.values()):
            raise ValueError("HmacTokenVerifier needs at least one non-empty secret")
        if clock_skew < timedelta(0):
            raise ValueError("HmacTokenVerifier clock_skew must not be negative")
        if max_lifetime <= timedelta(0):
            raise ValueError("HmacTokenVerifier max_lifetime must be positive")
        # The default clock read as integer nanoseconds directly: the same wall clock as
        # utc_now, without building a datetime and converting it on every call.
        self._now_ns: Callable[[], int] = (
            time.time_ns if clock is utc_now else lambda: datetime_nanos(clock())
        )
        self._skew_ns = timedelta_nanos(clock_skew)
        self._max_lifetime_ns = timedelta_nanos(max_lifetime)
        # Signature and lifetime checks are pure functions of the token, so a repeat caller's
        # token is checked once; the issue time and expiry depend on the clock, checked per call.
        self._check = functools.lru_cache(maxsize=1024)(self._check_signature)

    async def verify(self, token: str) -> Principal:
        verified = self._check(token)
        now_ns = self._now_ns()
        if verified.issued_at_ns - now_ns > self._skew_ns:
            raise QmtlError.unauthenticated("service token is issued in the future")
        if now_ns >= verified.expires_at_ns:
            raise QmtlError.unauthenticated("service token has expired")
        return verified.principal

    def _check_signature(self, token: str) -> _Verified:
        if len(token) > MAX_TOKEN_LENGTH:
            raise not_a_token()
        claims_text, dot, mac_text = token.partition(".")
        if not dot:
            raise not_a_token()
        claims, mac = b64decode(claims_text), b64decode(mac_text)
        try:
            parsed = service_token_pb2.ServiceToken.FromString(claims)
        except message.DecodeError:
            raise not_a_token() from None
        secret = self._keys.get(parsed.key_id)
        if secret is None:
            raise QmtlError.unauthenticated("service token is signed with an unknown key")
        if not hmac.compare_digest(mac, _mac(secret, claims)):
            raise QmtlError.unauthenticated("service token signature does not match")
        return _Verified(Principal(parsed.subject, frozenset(parsed.scopes)), *self._times(parsed))

    def _times(self, claims: service_token_pb2.ServiceToken) -> tuple[int, int]:
        """(issued_at, expires_at) in nanoseconds, once both are present and consistent."""
        if not claims.HasField("expires_at"):
            raise QmtlError.unauthenticated("service token has no expiry")
        if not claims.HasField("issued_at"):
            raise QmtlError.unauthenticated("service token has no issue time")
        issued_ns = timestamp_nanos(claims.issued_at, "issued_at")
        expires_ns = timestamp_nanos(claims.expires_at, "expires_at")
        if expires_ns <= issued_ns:
            raise QmtlError.unauthenticated("service token expires before it is issued")
        if expires_ns - issued_ns > self._max_lifetime_ns:
            raise QmtlError.unauthenticated("service token lifetime exceeds the maximum")
        return issued_ns, expires_ns


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None if the header is absent.

    Raises E_UNAUTHENTICATED for a header in another scheme or without a token.
    """
    if authorization is None:
        return None
    if (
        authorization.startswith("Bearer ")
        and len(authorization) > 7
        and " " not in authorization[7:]
    ):
        return authorization[7:]  # the usual form, without the general parse below
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise QmtlError.unauthenticated("Authorization must be 'Bearer <service token>'")
    return token


# The realm every 401 challenge names (RFC 6750 section 3); one for all QMTL services.
REALM = "qmtl"
_CHALLENGE = f'Bearer realm="{REALM}"'


def challenge(authorization: str | None) -> str:
    """The `WWW-Authenticate` value of a 401 answering a request with this Authorization header.

    RFC 6750 section 3: no `error` when the request carried no bearer credentials (no header,
    or another scheme such as Basic), `invalid_request` for a Bearer header without a usable
    token, `invalid_token` for a token that was sent and refused.
    """
    if authorization is None:
        return _CHALLENGE
    scheme = authorization.strip().partition(" ")[0]
    if scheme.lower() != "bearer":
        return _CHALLENGE
    try:
        bearer_token(authorization)
    except QmtlError:
        return f'{_CHALLENGE}, error="invalid_request"'
    return f'{_CHALLENGE}, error="invalid_token"'


async def authenticate(
    authorization: str | None,
    verifier: TokenVerifier,
    required_scopes: Collection[str],
    *,
    allow_anonymous: bool = False,
) -> Principal | None:
    """The caller allowed to run a method with `required_scopes`, from its Authorization header.

    No header: None if the method allows anonymous callers, else 401. A token that is sent is
    always verified, also on anonymous methods (401 if it fails), so a caller never mistakes a
    broken token for a working one. A principal lacking a required scope gets 403.
    """
    token = bearer_token(authorization)
    if token is None:
        if allow_anonymous:
            return None
        raise QmtlError.unauthenticated("this method needs a bearer service token")
    principal = await verifier.verify(token)
    if not allow_anonymous:
        require_scopes(principal, required_scopes)
    return principal


def require_scopes(principal: Principal, required_scopes: Collection[str]) -> None:
    """Raises E_PERMISSION_DENIED (403) unless `principal` holds every scope."""
    if not principal.has_scopes(required_scopes):
        missing = sorted(set(required_scopes) - principal.scopes)
        raise QmtlError.permission_denied(
            f"{principal.subject} lacks scope(s) {', '.join(missing)}",
            required_scopes=sorted(required_scopes),
        )
