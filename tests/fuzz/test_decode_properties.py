"""Body decoding: any body, for any request message, decodes or is the typed 400.

Runs tests/fuzz/targets.py `check_decode`, the property `make fuzz` holds atheris to, on
bodies shaped like each request message (tests/fuzz/strategies.py): a decoded request is one
both encodings can carry back, anything else is E_MALFORMED_BODY. Inputs that show a defect
tests/fuzz/known_defects.py lists pass; its crash files are that defect's regression tests.
"""

from __future__ import annotations

import pytest
from google.protobuf import message
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.runtime import codec
from tests.fuzz import known_defects, strategies
from tests.fuzz.profile import FUZZ, FUZZ_PER_ITEM
from tests.fuzz.targets import REQUEST_TYPES, TARGETS, check_decode

TYPES = [pytest.param(cls, id=name) for name, cls in REQUEST_TYPES.items()]


@pytest.mark.parametrize("cls", TYPES)
def test_json_bodies_decode_or_are_malformed(cls: type[message.Message]) -> None:
    @settings(FUZZ_PER_ITEM)
    @given(body=strategies.json_body(strategies.descriptor_of(cls)))
    def holds(body: bytes) -> None:
        with known_defects.tolerated():
            check_decode(cls, body, codec.Encoding.JSON)

    holds()


@pytest.mark.parametrize("cls", TYPES)
def test_protobuf_bodies_decode_or_are_malformed(cls: type[message.Message]) -> None:
    @settings(FUZZ_PER_ITEM)
    @given(body=strategies.wire_body(strategies.descriptor_of(cls)))
    def holds(body: bytes) -> None:
        with known_defects.tolerated():
            check_decode(cls, body, codec.Encoding.PROTOBUF)

    holds()


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(FUZZ)
@given(data=st.binary(max_size=64))
def test_every_target_holds_on_arbitrary_bytes(name: str, data: bytes) -> None:
    with known_defects.tolerated():
        TARGETS[name](data)
