"""The verifier's default clock is the wall clock: a cached signature never outlives expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qmtl.runtime.auth import HmacTokenVerifier, issue_token
from qmtl.runtime.errors import QmtlError

SECRET = b"default-clock-secret"


def _issued(at: datetime, ttl: timedelta) -> str:
    return issue_token(SECRET, "svc", ["a"], ttl=ttl, clock=lambda: at)


async def test_a_fresh_token_verifies_by_the_wall_clock() -> None:
    token = _issued(datetime.now(UTC), timedelta(minutes=5))

    assert (await HmacTokenVerifier(SECRET).verify(token)).subject == "svc"


async def test_a_token_past_its_expiry_by_the_wall_clock_is_refused() -> None:
    token = _issued(datetime.now(UTC) - timedelta(hours=2), timedelta(hours=1))

    with pytest.raises(QmtlError, match="expired") as raised:
        await HmacTokenVerifier(SECRET).verify(token)
    assert raised.value.http_status == 401


async def test_a_token_issued_beyond_the_skew_ahead_of_the_wall_clock_is_refused() -> None:
    token = _issued(datetime.now(UTC) + timedelta(minutes=10), timedelta(minutes=5))

    with pytest.raises(QmtlError, match="in the future"):
        await HmacTokenVerifier(SECRET).verify(token)


async def test_a_verified_token_is_refused_once_it_expires() -> None:
    # The signature check is cached per token; expiry is read from the clock on every call.
    now = [datetime.now(UTC)]
    token = _issued(now[0], timedelta(minutes=5))
    verifier = HmacTokenVerifier(SECRET, clock=lambda: now[0])

    assert (await verifier.verify(token)).subject == "svc"
    now[0] += timedelta(minutes=5)
    with pytest.raises(QmtlError, match="expired"):
        await verifier.verify(token)
