"""Service tokens: HMAC-signed ServiceToken claims, checked for signature, key and expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from qmtl.api.v1.service_token_pb2 import ServiceToken
from qmtl.runtime.auth import (
    HmacTokenVerifier,
    Principal,
    authenticate,
    bearer_token,
    challenge,
    issue_token,
    require_scopes,
)
from qmtl.runtime.errors import QmtlError

SECRET = b"unit-secret"
NOON = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def unauthenticated(raised: pytest.ExceptionInfo[QmtlError]) -> bool:
    return (raised.value.http_status, raised.value.wire_code) == (401, "E_UNAUTHENTICATED")


async def test_issued_token_verifies_to_its_subject_and_scopes() -> None:
    token = issue_token(SECRET, "sdk:alice", ["strategies:submit", "queues:read"])

    principal = await HmacTokenVerifier(SECRET).verify(token)

    assert principal == Principal("sdk:alice", frozenset({"strategies:submit", "queues:read"}))


def test_token_is_base64url_claims_dot_base64url_mac() -> None:
    token = issue_token(SECRET, "svc", ["a"], clock=Clock(NOON), ttl=timedelta(minutes=5))
    claims_text, mac_text = token.split(".")
    claims = ServiceToken.FromString(base64.urlsafe_b64decode(claims_text + "=="))

    assert (claims.subject, list(claims.scopes)) == ("svc", ["a"])
    assert claims.issued_at.ToDatetime(tzinfo=UTC) == NOON
    assert claims.expires_at.ToDatetime(tzinfo=UTC) == NOON + timedelta(minutes=5)
    assert len(base64.urlsafe_b64decode(mac_text + "=")) == 32
    assert "=" not in token


async def test_token_expires_at_its_expiry_by_the_injected_clock() -> None:
    clock = Clock(NOON)
    token = issue_token(SECRET, "svc", [], ttl=timedelta(minutes=5), clock=clock)
    verifier = HmacTokenVerifier(SECRET, clock=clock)

    clock.now = NOON + timedelta(minutes=4, seconds=59)
    assert (await verifier.verify(token)).subject == "svc"

    clock.now = NOON + timedelta(minutes=5)
    with pytest.raises(QmtlError, match="expired") as raised:
        await verifier.verify(token)
    assert unauthenticated(raised)


async def test_token_signed_with_another_secret_is_refused() -> None:
    token = issue_token(b"other-secret", "svc", ["a"])

    with pytest.raises(QmtlError, match="signature") as raised:
        await HmacTokenVerifier(SECRET).verify(token)
    assert unauthenticated(raised)


async def test_altered_claims_break_the_signature() -> None:
    token = issue_token(SECRET, "svc", ["queues:read"])
    claims_text, mac_text = token.split(".")
    claims = ServiceToken.FromString(base64.urlsafe_b64decode(claims_text + "=="))
    claims.scopes.append("dag:admin")
    forged = base64.urlsafe_b64encode(claims.SerializeToString()).decode().rstrip("=")

    with pytest.raises(QmtlError, match="signature"):
        await HmacTokenVerifier(SECRET).verify(f"{forged}.{mac_text}")


async def test_key_id_selects_the_secret_so_keys_can_rotate() -> None:
    verifier = HmacTokenVerifier({"k1": b"old", "k2": b"new"})

    assert (await verifier.verify(issue_token(b"old", "a", [], key_id="k1"))).subject == "a"
    assert (await verifier.verify(issue_token(b"new", "b", [], key_id="k2"))).subject == "b"
    with pytest.raises(QmtlError, match="unknown key"):
        await verifier.verify(issue_token(b"new", "c", [], key_id="k3"))


async def test_token_without_expiry_is_refused() -> None:
    claims = ServiceToken(subject="forever").SerializeToString()
    mac = hmac.new(SECRET, claims, hashlib.sha256).digest()
    token = ".".join(base64.urlsafe_b64encode(part).decode().rstrip("=") for part in (claims, mac))

    with pytest.raises(QmtlError, match="no expiry"):
        await HmacTokenVerifier(SECRET).verify(token)


@pytest.mark.parametrize(
    "token", ["", "nodot", ".", "a.", ".b", "!!!.???", "YWJj.ZGVm", "a.b.c", "////.////"]
)
async def test_garbled_token_is_401(token: str) -> None:
    with pytest.raises(QmtlError) as raised:
        await HmacTokenVerifier(SECRET).verify(token)
    assert unauthenticated(raised)


def test_verifier_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        HmacTokenVerifier(b"")


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("BEARER x.y", "x.y")],
)
def test_bearer_token_is_read_from_the_authorization_header(
    header: str | None, expected: str | None
) -> None:
    assert bearer_token(header) == expected


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer   ", "token abc"]
)
def test_other_authorization_schemes_are_401(header: str) -> None:
    with pytest.raises(QmtlError) as raised:
        bearer_token(header)
    assert unauthenticated(raised)


async def test_authenticate_checks_every_required_scope() -> None:
    verifier = HmacTokenVerifier(SECRET)
    header = f"Bearer {issue_token(SECRET, 'svc', ['dag:read'])}"

    principal = await authenticate(header, verifier, ["dag:read"])
    assert principal == Principal("svc", frozenset({"dag:read"}))

    with pytest.raises(QmtlError) as raised:
        await authenticate(header, verifier, ["dag:read", "dag:admin"])
    assert (raised.value.http_status, raised.value.wire_code) == (403, "E_PERMISSION_DENIED")
    assert raised.value.details == {"required_scopes": ["dag:admin", "dag:read"]}


async def test_missing_header_is_401_unless_anonymous_is_allowed() -> None:
    verifier = HmacTokenVerifier(SECRET)

    with pytest.raises(QmtlError) as raised:
        await authenticate(None, verifier, [])
    assert unauthenticated(raised)
    assert await authenticate(None, verifier, [], allow_anonymous=True) is None


async def test_a_token_sent_to_an_anonymous_method_is_still_verified() -> None:
    verifier = HmacTokenVerifier(SECRET)

    with pytest.raises(QmtlError) as raised:
        await authenticate("Bearer garbage", verifier, [], allow_anonymous=True)
    assert unauthenticated(raised)


def test_require_scopes_names_the_missing_ones() -> None:
    with pytest.raises(QmtlError, match="lacks scope\\(s\\) b, c"):
        require_scopes(Principal("p", frozenset({"a"})), ["a", "b", "c"])


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        # RFC 6750 section 3: no error code when no bearer credentials were sent at all.
        (None, 'Bearer realm="qmtl"'),
        ("Basic dXNlcjpwYXNz", 'Bearer realm="qmtl"'),
        ("Bearer ", 'Bearer realm="qmtl", error="invalid_request"'),
        ("bearer    ", 'Bearer realm="qmtl", error="invalid_request"'),
        ("Bearer not-a-token", 'Bearer realm="qmtl", error="invalid_token"'),
        ("bearer a.b", 'Bearer realm="qmtl", error="invalid_token"'),
    ],
)
def test_the_401_challenge_follows_what_the_request_sent(
    authorization: str | None, expected: str
) -> None:
    assert challenge(authorization) == expected
