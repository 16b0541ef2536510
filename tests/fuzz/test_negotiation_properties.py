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
        ("*/*;q=0.1, application/json;q=1e999", codec.Encoding.JSON),
        ("application/json;q=2", codec.Encoding.JSON),
    ],
)
def test_edge_q_values_are_clamped_not_refused(accept: str, expected: codec.Encoding) -> None:
    check_negotiation(accept)
    assert codec.negotiate(accept) is expected


@pytest.mark.xfail(
    strict=True,
    reason="defect found by this suite: float() reads q=nan, and a NaN weight is neither "
    "refused nor ranked (every comparison with it is false); drop this mark with the fix",
)
@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        # A weight that cannot be read is ignored (codec._media_range), so JSON is the only
        # range left; today the NaN range outranks it.
        ("*/*;q=nan, application/json", codec.Encoding.JSON),
        ("application/x-protobuf;q=nan, application/json;q=0.5", codec.Encoding.JSON),
    ],
)
def test_a_nan_q_value_is_ignored_like_any_unreadable_weight(
    accept: str, expected: codec.Encoding
) -> None:
    assert codec.negotiate(accept) is expected
