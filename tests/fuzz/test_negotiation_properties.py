"""Content negotiation: any Accept or Content-Type value picks an encoding it names, or is 406/415.

Runs tests/fuzz/targets.py `check_negotiation` on values from the media-range grammar (types,
wildcards, q-values in and out of range, charsets, stray separators) and on raw header bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from qmtl.runtime import codec
from tests.fuzz import strategies
from tests.fuzz.profile import FUZZ
from tests.fuzz.targets import check_negotiation


@settings(FUZZ)
@given(value=strategies.media_header)
def test_accept_and_content_type_values_pick_an_encoding_or_are_refused(value: str) -> None:
    check_negotiation(value)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json;q=0.5, application/x-protobuf;q=0.4", codec.Encoding.JSON),
        ("application/*, application/json;q=0", codec.Encoding.PROTOBUF),
        ("application/json;q=1.000, application/x-protobuf;q=0.999", codec.Encoding.JSON),
        ("application/x-protobuf;q=0., application/json;q=1.", codec.Encoding.JSON),
        ("application/x-protobuf;Q=0.001, application/json;q=0.002", codec.Encoding.JSON),
    ],
)
def test_edge_q_values_of_the_rfc_grammar_are_read(accept: str, expected: codec.Encoding) -> None:
    check_negotiation(accept)
    assert codec.negotiate(accept) is expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        # A weight outside RFC 9110's qvalue grammar is ignored with its range
        # (codec._media_range), so the other range decides. float() reads every one of these,
        # and a NaN weight used to outrank JSON (every comparison with it is false).
        ("*/*;q=nan, application/json", codec.Encoding.JSON),
        ("application/x-protobuf;q=nan, application/json;q=0.5", codec.Encoding.JSON),
        ("application/x-protobuf;q=inf, application/json;q=0.5", codec.Encoding.JSON),
        ("application/x-protobuf;q=1e0, application/json;q=0.5", codec.Encoding.JSON),
        ("application/x-protobuf;q=1_0, application/json;q=0.5", codec.Encoding.JSON),
        ("application/x-protobuf;q= 1, application/json;q=0.5", codec.Encoding.JSON),
        ("application/x-protobuf;q=0.5000, application/json;q=0.1", codec.Encoding.JSON),
        ("application/x-protobuf;q=1.001, application/json;q=0.1", codec.Encoding.JSON),
        # Weights above 1 used to be clamped to 1; out of the grammar, they are now ignored.
        ("*/*;q=0.1, application/json;q=1e999", codec.Encoding.PROTOBUF),
        ("application/x-protobuf;q=2, application/json;q=0.5", codec.Encoding.JSON),
        ("application/x-protobuf;q=-1, application/json;q=0.5", codec.Encoding.JSON),
    ],
)
def test_a_weight_outside_the_qvalue_grammar_is_ignored_like_any_unreadable_weight(
    accept: str, expected: codec.Encoding
) -> None:
    check_negotiation(accept)
    assert codec.negotiate(accept) is expected
