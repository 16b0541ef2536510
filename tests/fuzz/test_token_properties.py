"""Properties of the service-token verifier (issue 8, auth items 6-8), drawn by hypothesis.

Any string, bytes or signed claims end in a Principal or the typed 401, never another exception;
a signed token verifies exactly when its times obey the rules of docs/operations/auth.md; and no
single-character change to a valid token's text leaves it valid (one credential, one string).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qmtl.api.v1.service_token_pb2 import ServiceToken
from qmtl.runtime.auth import DEFAULT_CLOCK_SKEW, DEFAULT_MAX_LIFETIME
from tests.fuzz.profile import FUZZ
from tests.fuzz.targets import TOKEN_CLOCK, TOKEN_SECRET, check_token, signed_token

# The suite's reproducible profile (derandomized, no example database), with more examples:
# tokens are cheap to check.
BOUNDED = settings(FUZZ, max_examples=300)
NANOS = 1_000_000_000
CLOCK_NS = (TOKEN_CLOCK - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
CLOCK_S = CLOCK_NS // NANOS
SKEW_NS = DEFAULT_CLOCK_SKEW // timedelta(microseconds=1) * 1000
MAX_LIFETIME_NS = DEFAULT_MAX_LIFETIME // timedelta(microseconds=1) * 1000
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799
DAY = 86_400

# Seconds mostly near the verifier's clock, where the rules decide, sometimes anywhere in int64.
seconds = st.one_of(
    st.integers(CLOCK_S - 2 * DAY, CLOCK_S + 2 * DAY),
    st.sampled_from([CLOCK_S - DAY, CLOCK_S, CLOCK_S + 60, CLOCK_S + DAY]),
    st.sampled_from([MIN_SECONDS, MAX_SECONDS, MIN_SECONDS - 1, MAX_SECONDS + 1]),
    st.integers(-(2**63), 2**63 - 1),
)
nanos = st.one_of(
    st.integers(0, NANOS - 1), st.sampled_from([0, NANOS - 1]), st.integers(-(2**31), 2**31 - 1)
)
utf8_text = st.text(st.characters(codec="utf-8"), max_size=20)
# Characters a lenient decoder would read as part of, or ignore inside, a token, then any other.
token_chars = st.one_of(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. \t\n"),
    st.characters(),
)


@st.composite
def claims(draw: st.DrawFn) -> ServiceToken:
    drawn = ServiceToken(
        subject=draw(utf8_text),
        scopes=draw(st.lists(utf8_text, max_size=3)),
        key_id=draw(st.sampled_from(["", "", "", "other"])),
    )
    for name in ("issued_at", "expires_at"):
        if draw(st.integers(0, 9)):  # present nine times in ten
            stamp = getattr(drawn, name)
            stamp.seconds, stamp.nanos = draw(seconds), draw(nanos)
    return drawn


def ns(stamp_seconds: int, stamp_nanos: int) -> int | None:
    """The instant in nanoseconds, or None when google.protobuf.Timestamp says it is invalid."""
    if MIN_SECONDS <= stamp_seconds <= MAX_SECONDS and 0 <= stamp_nanos < NANOS:
        return stamp_seconds * NANOS + stamp_nanos
    return None


def acceptable(token: ServiceToken) -> bool:
    """The rules of docs/operations/auth.md, restated independently of the verifier."""
    if token.key_id or not (token.HasField("issued_at") and token.HasField("expires_at")):
        return False
    issued = ns(token.issued_at.seconds, token.issued_at.nanos)
    expires = ns(token.expires_at.seconds, token.expires_at.nanos)
    if issued is None or expires is None:
        return False
    return (
        issued < expires
        and expires - issued <= MAX_LIFETIME_NS
        and issued - CLOCK_NS <= SKEW_NS
        and expires > CLOCK_NS
    )


@BOUNDED
@given(st.text())
def test_any_string_is_a_principal_or_the_typed_401(text: str) -> None:
    check_token(text)


@BOUNDED
@given(st.binary())
def test_any_bytes_as_a_header_value_are_a_principal_or_the_typed_401(data: bytes) -> None:
    check_token(data.decode("latin-1"))


@BOUNDED
@given(st.binary())
def test_any_signed_claims_bytes_are_a_principal_or_the_typed_401(data: bytes) -> None:
    check_token(signed_token(data))


@BOUNDED
@given(claims())
def test_signed_claims_verify_exactly_when_their_times_obey_the_rules(drawn: ServiceToken) -> None:
    principal = check_token(signed_token(drawn.SerializeToString(deterministic=True)))

    assert (principal is not None) == acceptable(drawn)
    if principal is not None:
        assert (principal.subject, principal.scopes) == (drawn.subject, frozenset(drawn.scopes))


@st.composite
def valid_tokens(draw: st.DrawFn) -> str:
    issued = draw(st.integers(CLOCK_NS - DAY * NANOS // 2, CLOCK_NS + SKEW_NS))
    # Unexpired at the clock, expiring after it is issued, within half the maximum lifetime.
    shortest = max(1, CLOCK_NS - issued + 1)
    lifetime = draw(st.integers(shortest, CLOCK_NS - issued + MAX_LIFETIME_NS // 2))
    drawn = ServiceToken(subject=draw(utf8_text), scopes=draw(st.lists(utf8_text, max_size=3)))
    drawn.issued_at.seconds, drawn.issued_at.nanos = divmod(issued, NANOS)
    drawn.expires_at.seconds, drawn.expires_at.nanos = divmod(issued + lifetime, NANOS)
    return signed_token(drawn.SerializeToString(deterministic=True), TOKEN_SECRET)


@BOUNDED
@given(valid_tokens(), st.sampled_from(["replace", "insert", "delete"]), st.data())
def test_any_single_character_change_to_a_valid_token_is_refused(
    token: str, change: str, data: st.DataObject
) -> None:
    assert check_token(token) is not None
    at = data.draw(st.integers(0, len(token) - (change != "insert")), label="at")
    char = data.draw(token_chars, label="char")
    if change == "replace":
        assume(char != token[at])
        mutated = token[:at] + char + token[at + 1 :]
    elif change == "insert":
        mutated = token[:at] + char + token[at:]
    else:
        mutated = token[:at] + token[at + 1 :]

    assert check_token(mutated) is None, (change, at, char)
