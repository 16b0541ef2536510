"""The documents' Duration and Timestamp patterns admit exactly what the servers decode.

The server side is the real body decoder (`codec.decode` of a JSON body holding the value),
so a value the pattern admits and the server refuses, or the reverse, fails here. Durations
agree both ways; for Timestamps the pattern also leaves undescribed the offsets that, on the
range's first or last day, could cross its end (see wellknown_patterns), and only those.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.dag.v1 import queue_pb2
from qmtl.runtime import codec
from qmtl.runtime.errors import QmtlError
from qmtl_codegen.wellknown_patterns import DURATION_PATTERN, TIMESTAMP_PATTERN

DURATION = re.compile(DURATION_PATTERN)
TIMESTAMP = re.compile(TIMESTAMP_PATTERN)
LIMIT = 315_576_000_000


def server_accepts(field: str, text: str) -> bool:
    body = json.dumps({field: text}).encode()
    try:
        codec.decode(queue_pb2.Queue, body, codec.Encoding.JSON)
    except QmtlError:
        return False
    return True


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("315576000000s", True),
        ("315576000000.999999999s", True),
        ("-315576000000.999999999s", True),
        ("0315576000000s", True),
        ("-0s", True),
        ("315576000001s", False),
        ("-315576000001s", False),
        ("999999999999s", False),
        ("-119105087499875.453619236s", False),  # the schemathesis case of issue 8
        ("1.1234567891s", False),
    ],
)
def test_duration_pattern_is_the_range_the_server_decodes(text: str, valid: bool) -> None:
    assert bool(DURATION.search(text)) is valid
    assert server_accepts("retention", text) is valid


@settings(max_examples=300, deadline=None, database=None)
@given(
    seconds=st.integers(-(LIMIT + 10**6), LIMIT + 10**6) | st.integers(-(10**15), 10**15),
    fraction=st.none() | st.text("0123456789", min_size=1, max_size=9),
    zeros=st.integers(0, 2),
)
def test_duration_pattern_agrees_with_the_server(
    seconds: int, fraction: str | None, zeros: int
) -> None:
    sign = "-" if seconds < 0 else ""
    text = f"{sign}{'0' * zeros}{abs(seconds)}{'' if fraction is None else '.' + fraction}s"
    assert bool(DURATION.search(text)) == server_accepts("retention", text), text


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("0001-01-01T00:00:00Z", True),
        ("9999-12-31T23:59:59.999999999Z", True),
        ("0001-01-01T00:00:00-05:00", True),
        ("9999-12-31T23:00:00+05:00", True),
        ("2000-02-29T00:00:00Z", True),
        ("2024-02-29T12:00:00+23:59", True),
        ("0400-02-29T00:00:00Z", True),
        ("0000-12-31T23:59:59Z", False),
        ("0001-01-01T00:00:00+01:00", False),
        ("9999-12-31T23:59:59-01:00", False),
        ("1900-02-29T00:00:00Z", False),
        ("2100-02-29T00:00:00Z", False),
        ("2023-02-29T00:00:00Z", False),
        ("2026-04-31T00:00:00Z", False),
        ("2026-01-01T24:00:00Z", False),
        ("2026-01-01T00:00:60Z", False),
        ("2026-01-01t00:00:00z", False),
        ("2026-01-01T00:00:00", False),
        ("2026-01-01T00:00:00.1234567890Z", False),
    ],
)
def test_timestamp_pattern_is_the_range_the_server_decodes(text: str, valid: bool) -> None:
    assert bool(TIMESTAMP.search(text)) is valid
    assert server_accepts("createdAt", text) is valid


def _crosses_an_end_undescribed(text: str) -> bool:
    """A positive offset on the first day or a negative one on the last (left undescribed)."""
    offset = text[-6:]
    return (text.startswith("0001-01-01T") and offset.startswith("+")) or (
        text.startswith("9999-12-31T") and offset.startswith("-")
    )


@settings(max_examples=500, deadline=None, database=None)
@given(
    year=st.sampled_from([0, 1, 2, 4, 100, 400, 1900, 2000, 2024, 9998, 9999]),
    month=st.integers(0, 13),
    day=st.integers(0, 32),
    hour=st.integers(0, 24),
    minute=st.integers(0, 60),
    second=st.integers(0, 60),
    fraction=st.sampled_from(["", ".5", ".123456789", ".1234567890"]),
    offset=st.sampled_from(["Z", "z", "+00:00", "-00:00", "+01:30", "-01:30", "+23:59", "+24:00"]),
)
def test_timestamp_pattern_agrees_with_the_server(
    year: int, month: int, day: int, hour: int, minute: int, second: int, fraction: str, offset: str
) -> None:
    text = f"{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{offset}"
    admitted, accepted = bool(TIMESTAMP.search(text)), server_accepts("createdAt", text)
    if admitted:
        assert accepted, f"{text}: documented but refused"
    elif accepted:
        assert _crosses_an_end_undescribed(text), f"{text}: accepted but undocumented"


@settings(max_examples=200, deadline=None, database=None)
@given(text=st.from_regex(TIMESTAMP, fullmatch=True) | st.from_regex(DURATION, fullmatch=True))
def test_every_value_a_pattern_admits_is_decoded(text: str) -> None:
    field = "retention" if text.endswith("s") else "createdAt"
    assert server_accepts(field, text), text
