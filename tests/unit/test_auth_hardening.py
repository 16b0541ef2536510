"""Issue 8, auth items 6-8: out-of-range claims, malleable token strings, issue time and lifetime.

Tokens here are signed by hand from arbitrary ServiceToken claims, so a test can set fields
`issue_token` never would (out-of-range timestamps, a missing issue time, nanosecond lifetimes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from google.protobuf import json_format, timestamp_pb2

from qmtl.api.v1.service_token_pb2 import ServiceToken
from qmtl.common.v1.error_pb2 import ErrorDetail
from qmtl.runtime.auth import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_LIFETIME,
    MAX_TOKEN_LENGTH,
    HmacTokenVerifier,
    issue_token,
)
from qmtl.runtime.errors import QmtlError
from tests.http import surface
from tests.http.conftest import build_apps
from tests.http.surface import OPERATIONS, Op, ids, query_params, request_fixture, url_path

SECRET = b"hardening-secret"
NOON = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
NOON_SECONDS = int(NOON.timestamp())
# Timestamp's documented range is 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z.
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799


def fixed_clock(now: datetime = NOON) -> HmacTokenVerifier:
    return HmacTokenVerifier(SECRET, clock=lambda: now)


def stamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def sign(claims: ServiceToken, secret: bytes = SECRET) -> str:
    """The canonical token string of `claims`, however odd the claims are."""
    raw = claims.SerializeToString(deterministic=True)
    mac = hmac.new(secret, raw, hashlib.sha256).digest()
    return ".".join(base64.urlsafe_b64encode(part).decode().rstrip("=") for part in (raw, mac))


def claims_at(
    issued: timestamp_pb2.Timestamp | None = None,
    expires: timestamp_pb2.Timestamp | None = None,
) -> ServiceToken:
    """Claims for `svc` issued at NOON and expiring an hour later unless told otherwise."""
    return ServiceToken(
        subject="svc",
        scopes=["a"],
        issued_at=issued if issued is not None else stamp(NOON_SECONDS),
        expires_at=expires if expires is not None else stamp(NOON_SECONDS + 3600),
    )


async def refused(verifier: HmacTokenVerifier, token: str, match: str = "") -> QmtlError:
    with pytest.raises(QmtlError, match=match) as raised:
        await verifier.verify(token)
    assert (raised.value.http_status, raised.value.wire_code) == (401, "E_UNAUTHENTICATED")
    return raised.value


# -- 6: every out-of-range field is a 401, never another exception --------------------------

OUT_OF_RANGE = [
    pytest.param(2**62, 0, id="seconds-2^62"),
    pytest.param(-(2**62), 0, id="seconds--2^62"),
    pytest.param(MAX_SECONDS + 1, 0, id="seconds-after-9999"),
    pytest.param(MIN_SECONDS - 1, 0, id="seconds-before-0001"),
    pytest.param(NOON_SECONDS + 60, -1, id="negative-nanos"),
    pytest.param(NOON_SECONDS + 60, 1_000_000_000, id="nanos-1e9"),
    pytest.param(NOON_SECONDS + 60, -(2**31), id="nanos-int32-min"),
]


@pytest.mark.parametrize(("seconds", "nanos"), OUT_OF_RANGE)
async def test_out_of_range_expires_at_is_401(seconds: int, nanos: int) -> None:
    await refused(fixed_clock(), sign(claims_at(expires=stamp(seconds, nanos))), "expires_at")


@pytest.mark.parametrize(("seconds", "nanos"), OUT_OF_RANGE)
async def test_out_of_range_issued_at_is_401(seconds: int, nanos: int) -> None:
    await refused(fixed_clock(), sign(claims_at(issued=stamp(seconds, nanos))), "issued_at")


async def test_timestamps_at_the_edges_of_the_range_are_read_not_refused_as_malformed() -> None:
    # 9999-12-31T23:59:59.999999999Z is valid; such a token is refused for its lifetime only.
    token = sign(claims_at(expires=stamp(MAX_SECONDS, 999_999_999)))

    await refused(fixed_clock(), token, "lifetime")


def signed_now(expires: timestamp_pb2.Timestamp) -> str:
    """A token of the HTTP test secret, issued now (the apps' verifier uses the real clock)."""
    now = int(datetime.now(UTC).timestamp())
    claims = ServiceToken(subject="test:caller", issued_at=stamp(now), expires_at=expires)
    return sign(claims, surface.SECRET)


async def call_route(op: Op, token: str) -> tuple[int, ErrorDetail, int]:
    """The op called through its generated app with `token`: status, error body, handler calls."""
    apps = build_apps(op)
    request = request_fixture(op)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    transport = httpx.ASGITransport(app=apps.app_for(op), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        if op.body:
            headers["Content-Type"] = "application/x-protobuf"
            response = await http.request(
                op.verb, url_path(op, request), content=request.SerializeToString(), headers=headers
            )
        else:
            response = await http.request(
                op.verb, url_path(op, request), params=query_params(op, request), headers=headers
            )
    detail = ErrorDetail()
    if response.status_code >= 400:
        json_format.Parse(response.text, detail)
    return response.status_code, detail, len(apps.handler.calls)


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_route_with_an_out_of_range_expiry_is_401_not_500(op: Op) -> None:
    status, detail, calls = await call_route(op, signed_now(stamp(2**62)))

    assert (status, detail.code, calls) == (401, "E_UNAUTHENTICATED", 0), detail.message


@pytest.mark.parametrize(("seconds", "nanos"), OUT_OF_RANGE)
async def test_route_is_401_for_every_out_of_range_expiry(seconds: int, nanos: int) -> None:
    op = next(op for op in OPERATIONS if not op.anonymous and not op.public)

    status, detail, _ = await call_route(op, signed_now(stamp(seconds, nanos)))

    assert (status, detail.code) == (401, "E_UNAUTHENTICATED"), detail.message


# -- 7: one credential, one string ----------------------------------------------------------

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def flip_unused_bits(part: str) -> str:
    """`part` with the unused low bits of its last character set: same bytes, other string."""
    spare_bits = {2: 4, 3: 2}[len(part) % 4]  # 1 byte in 2 chars leaves 4 bits, 2 in 3 leave 2
    last = _ALPHABET.index(part[-1])
    return part[:-1] + _ALPHABET[last | ((1 << spare_bits) - 1)]


def token_with_alphabet_chars() -> str:
    """A valid token whose text holds a `-` or `_`, so `+/` can stand in for them."""
    claims = claims_at()
    for n in range(1000):
        claims.subject = f"svc{n}"
        token = sign(claims)
        if "-" in token or "_" in token:
            return token
    raise AssertionError("no token with - or _ in 1000 tries")


def variants() -> list[tuple[str, str]]:
    """(name, string) for each way to spell a valid token differently."""
    token = token_with_alphabet_chars()
    claims, mac = token.split(".")
    assert len(mac) % 4 == 3  # 32 bytes: 43 characters, 2 unused bits
    found = [
        ("mac-unused-bits", f"{claims}.{flip_unused_bits(mac)}"),
        ("mac-padded", f"{claims}.{mac}="),
        ("mac-over-padded", f"{claims}.{mac}==="),
        ("claims-padded", f"{claims}{'=' * (-len(claims) % 4) or '===='}.{mac}"),
        ("claims-extra-equals", f"{claims}==.{mac}"),
        ("leading-space", f" {token}"),
        ("trailing-space", f"{token} "),
        ("trailing-newline", f"{token}\n"),
        ("space-inside-claims", f"{claims[:4]} {claims[4:]}.{mac}"),
        ("tab-inside-mac", f"{claims}.{mac[:4]}\t{mac[4:]}"),
        ("standard-alphabet", token.replace("-", "+").replace("_", "/")),
        ("mixed-alphabet", token.replace("-", "+", 1).replace("_", "/", 1)),
    ]
    if len(claims) % 4:
        found.append(("claims-unused-bits", f"{flip_unused_bits(claims)}.{mac}"))
    return found


def test_each_variant_differs_from_the_token_but_decodes_to_the_same_bytes() -> None:
    # Guards the test below: every variant must be a different spelling of the same credential
    # to a lenient decoder, else refusing it would prove nothing.
    token = token_with_alphabet_chars()

    def lenient(text: str) -> bytes:
        text = "".join(text.split()).rstrip("=").replace("+", "-").replace("/", "_")
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    for name, variant in variants():
        assert variant != token, name
        assert [lenient(p) for p in variant.split(".")] == [lenient(p) for p in token.split(".")]


async def test_the_canonical_token_verifies() -> None:
    assert (await fixed_clock().verify(token_with_alphabet_chars())).subject.startswith("svc")


@pytest.mark.parametrize(("name", "variant"), variants(), ids=[name for name, _ in variants()])
async def test_non_canonical_spelling_of_a_valid_token_is_refused(name: str, variant: str) -> None:
    await refused(fixed_clock(), variant, "not a service token")


async def test_token_longer_than_the_maximum_is_refused_even_if_well_signed() -> None:
    claims = claims_at()
    claims.subject = "s" * MAX_TOKEN_LENGTH
    token = sign(claims)
    claims.subject = "s" * (MAX_TOKEN_LENGTH * 3 // 4 - 200)
    longest = sign(claims)
    assert len(longest) <= MAX_TOKEN_LENGTH < len(token)

    await refused(fixed_clock(), token, "not a service token")
    assert (await fixed_clock().verify(longest)).subject == claims.subject


# -- 8: issue time within the clock skew, lifetime within the maximum -----------------------
# fixed_clock() builds a verifier with the documented defaults: 60 s of skew, 24 h of lifetime.


async def test_token_issued_beyond_the_clock_skew_is_refused() -> None:
    future = stamp(NOON_SECONDS + 60, 1)
    token = sign(claims_at(issued=future, expires=stamp(NOON_SECONDS + 3600)))

    await refused(fixed_clock(), token, "issued in the future")


async def test_token_issued_within_the_clock_skew_is_accepted() -> None:
    token = sign(claims_at(issued=stamp(NOON_SECONDS + 60), expires=stamp(NOON_SECONDS + 3600)))

    assert (await fixed_clock().verify(token)).subject == "svc"


async def test_issue_time_is_checked_on_every_call_not_only_the_first() -> None:
    now = [NOON]
    verifier = HmacTokenVerifier(SECRET, clock=lambda: now[0])
    token = sign(claims_at(issued=stamp(NOON_SECONDS + 120), expires=stamp(NOON_SECONDS + 3600)))

    await refused(verifier, token, "issued in the future")
    now[0] = NOON + timedelta(seconds=60)
    assert (await verifier.verify(token)).subject == "svc"


async def test_clock_skew_is_configurable() -> None:
    verifier = HmacTokenVerifier(SECRET, clock=lambda: NOON, clock_skew=timedelta(0))
    token = sign(claims_at(issued=stamp(NOON_SECONDS + 1)))

    await refused(verifier, token, "issued in the future")
    assert (await verifier.verify(sign(claims_at(issued=stamp(NOON_SECONDS))))).subject == "svc"


async def test_lifetime_over_the_maximum_is_refused() -> None:
    day = 24 * 3600
    token = sign(claims_at(expires=stamp(NOON_SECONDS + day, 1)))  # one nanosecond over

    await refused(fixed_clock(), token, "lifetime")


async def test_lifetime_exactly_at_the_maximum_is_accepted() -> None:
    token = sign(claims_at(issued=stamp(NOON_SECONDS, 5), expires=stamp(NOON_SECONDS + 86400, 5)))

    assert (await fixed_clock().verify(token)).subject == "svc"


async def test_max_lifetime_is_configurable_and_issue_token_respects_it() -> None:
    verifier = HmacTokenVerifier(SECRET, clock=lambda: NOON, max_lifetime=timedelta(hours=1))

    hour = issue_token(SECRET, "svc", [], ttl=timedelta(hours=1), clock=lambda: NOON)
    assert (await verifier.verify(hour)).subject == "svc"
    two = issue_token(SECRET, "svc", [], ttl=timedelta(hours=2), clock=lambda: NOON)
    await refused(verifier, two, "lifetime")


async def test_token_without_issue_time_is_refused() -> None:
    claims = ServiceToken(subject="svc", expires_at=stamp(NOON_SECONDS + 60))

    await refused(fixed_clock(), sign(claims), "no issue time")


async def test_token_expiring_before_it_was_issued_is_refused() -> None:
    token = sign(claims_at(issued=stamp(NOON_SECONDS + 30), expires=stamp(NOON_SECONDS + 10)))

    await refused(fixed_clock(), token, "expires before")


@pytest.mark.parametrize(
    ("skew", "lifetime"),
    [
        (timedelta(seconds=-1), DEFAULT_MAX_LIFETIME),
        (DEFAULT_CLOCK_SKEW, timedelta(0)),
        (DEFAULT_CLOCK_SKEW, timedelta(seconds=-5)),
    ],
)
def test_verifier_refuses_nonsense_settings(skew: timedelta, lifetime: timedelta) -> None:
    with pytest.raises(ValueError, match=r"clock_skew|max_lifetime"):
        HmacTokenVerifier(SECRET, clock_skew=skew, max_lifetime=lifetime)
