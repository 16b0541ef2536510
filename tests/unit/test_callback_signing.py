"""Callback signing: fixed vectors (computed independently with `openssl dgst -hmac`), the
header's form, and every refusal of the receivers' verifier."""

from __future__ import annotations

import pytest

from qmtl.runtime.callbacks import (
    MAX_AGE,
    MAX_FUTURE_SKEW,
    SIGNATURE_HEADER,
    InvalidSigningKeyError,
    SignatureError,
    SigningKey,
    compute_signature,
    sign,
    verify,
)

SECRET = b"whsec-test-0123456789abcdef0123456789"
KEY = SigningKey("k1", SECRET)
KEYS = {"k1": SECRET}
T = 1_700_000_000
BODY = b"\x0a\x03abc\x12\x00"  # binary on purpose: protobuf bodies are not text

# printf '1700000000.\x0a\x03abc\x12\x00' | openssl dgst -sha256 -hmac "$SECRET"
VECTOR_BINARY = "970b888f8d06edf417212a0fa5bbdb6f890b248aca6f57180ce096910a2ea17c"
# printf '1700000000.{"hello":"qmtl"}' | openssl dgst -sha256 -hmac "$SECRET"
VECTOR_TEXT = "b7bac7cc9f4807d594abc92f90e30581fbe78a815bc6daa4627a10592f6a6c22"


def header(key_id: str = "k1", timestamp: int = T, digest: str = VECTOR_BINARY) -> dict[str, str]:
    return {SIGNATURE_HEADER: f"t={timestamp},k={key_id},v1={digest}"}


def test_vectors() -> None:
    assert compute_signature(SECRET, T, BODY) == VECTOR_BINARY
    assert compute_signature(SECRET, T, b'{"hello":"qmtl"}') == VECTOR_TEXT


def test_sign_writes_the_documented_header() -> None:
    assert sign(KEY, BODY, now=T + 0.9) == header()


def test_a_fresh_signature_verifies() -> None:
    headers = sign(KEY, BODY, now=T)
    verified = verify(headers, BODY, KEYS, now=T + MAX_AGE)
    assert (verified.timestamp, verified.key_id) == (T, "k1")


def test_header_name_is_case_insensitive_even_in_a_plain_dict() -> None:
    assert verify({"qmtl-signature": header()[SIGNATURE_HEADER]}, BODY, KEYS, now=T).key_id == "k1"


def test_rotation_each_key_verifies_under_its_own_id() -> None:
    new = SigningKey("k2", b"n" * 32)
    both = {"k1": SECRET, "k2": new.secret}
    assert verify(sign(new, BODY, now=T), BODY, both, now=T).key_id == "k2"
    assert verify(sign(KEY, BODY, now=T), BODY, both, now=T).key_id == "k1"


def refusal(headers: dict[str, str], body: bytes = BODY, now: float = T) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(headers, body, KEYS, now=now)
    assert caught.value.http_status == 401
    assert caught.value.wire_code == "E_UNAUTHENTICATED"
    return caught.value.reason


def test_missing_header_is_refused() -> None:
    assert refusal({}) == "missing"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"t={T},k=k1",  # no v1
        f"k=k1,v1={VECTOR_BINARY}",  # no t
        f"t={T},v1={VECTOR_BINARY}",  # no k
        f"t=-{T},k=k1,v1={VECTOR_BINARY}",
        f"t={T}.5,k=k1,v1={VECTOR_BINARY}",
        f"t={'9' * 13},k=k1,v1={VECTOR_BINARY}",
        f"t={T},k=k1,v1={VECTOR_BINARY.upper()}",
        f"t={T},k=k1,v1={VECTOR_BINARY[:-2]}",
        f"t={T},t={T},k=k1,v1={VECTOR_BINARY}",  # a second t could smuggle another time
        f"t={T},k=k 1,v1={VECTOR_BINARY}",
        f"t={T},k=k1,v1={VECTOR_BINARY}," + "x=" + "a" * 600,
    ],
)
def test_malformed_header_is_refused(value: str) -> None:
    assert refusal({SIGNATURE_HEADER: value}) == "malformed"


def test_unknown_fields_are_ignored() -> None:
    value = header()[SIGNATURE_HEADER] + ",v2=future-scheme"
    assert verify({SIGNATURE_HEADER: value}, BODY, KEYS, now=T).key_id == "k1"


def test_unknown_key_is_refused() -> None:
    assert refusal(header(key_id="k9")) == "unknown_key"


def test_a_changed_body_is_refused() -> None:
    assert refusal(header(), body=BODY + b"\x00") == "mismatch"


def test_a_changed_timestamp_is_refused() -> None:
    # The time is inside the MAC: moving it forward to dodge the replay window breaks it.
    assert refusal(header(timestamp=T + 60), now=T + 60) == "mismatch"


def test_a_wrong_secret_is_refused() -> None:
    other = SigningKey("k1", b"x" * 32)
    assert refusal(sign(other, BODY, now=T)) == "mismatch"


def test_a_replay_older_than_five_minutes_is_refused() -> None:
    assert MAX_AGE == 300.0
    assert verify(header(), BODY, KEYS, now=T + 300).timestamp == T
    assert refusal(header(), now=T + 301) == "expired"


def test_a_signature_from_the_future_is_refused_beyond_the_skew() -> None:
    assert verify(header(), BODY, KEYS, now=T - MAX_FUTURE_SKEW).timestamp == T
    assert refusal(header(), now=T - MAX_FUTURE_SKEW - 1) == "future"


def test_max_age_is_the_receivers_choice() -> None:
    with pytest.raises(SignatureError):
        verify(header(), BODY, KEYS, now=T + 61, max_age=60)


@pytest.mark.parametrize(
    ("key_id", "secret", "field"),
    [
        ("", SECRET, "key_id"),
        ("a,b", SECRET, "key_id"),
        ("k" * 65, SECRET, "key_id"),
        ("k1", b"short", "secret"),
        ("k1", b"s" * 31, "secret"),
    ],
)
def test_unusable_keys_are_refused_when_built(key_id: str, secret: bytes, field: str) -> None:
    with pytest.raises(InvalidSigningKeyError) as caught:
        SigningKey(key_id, secret)
    assert caught.value.field == field
    assert caught.value.http_status == 422


def test_the_secret_stays_out_of_repr() -> None:
    assert SECRET.decode() not in repr(KEY)
