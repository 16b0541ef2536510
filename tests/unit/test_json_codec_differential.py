"""The generated proto3 JSON codec against json_format (the runtime's JSON path before it).

For every golden fixture and for hypothesis-drawn messages of every message type: the JSON
ours prints equals the reference's after parsing (with and without emit_defaults, or both
refuse to print it), and for JSON texts derived from it (re-spelt as proto3 JSON allows, or
broken in one place) both decode to the same message or both refuse, with and without
ignore_unknown. Examples per type: QMTL_CODEC_EXAMPLES (default 20, so the file takes ~20 s in
`make test`). The issue's CI-sized figure, 10000 per type, costs ~8 ms an example on the 2-core
machine, about two hours for the ~90 types: `QMTL_CODEC_EXAMPLES=10000 .venv/bin/pytest
tests/unit/test_json_codec_differential.py` runs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from google.protobuf import message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit import json_codec_oracle as oracle
from tests.unit.json_codec_strategies import json_variants, messages

FIXTURES = Path(__file__).resolve().parents[1] / "golden" / "fixtures"
EXAMPLES = int(os.environ.get("QMTL_CODEC_EXAMPLES", "20"))
PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TYPES = oracle.message_types()
BY_NAME = {cls.DESCRIPTOR.full_name: cls for cls in TYPES}


def _fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("*/*.binpb"))


def check_encode(msg: message.Message) -> None:
    for emit_defaults in (False, True):
        ours = oracle.ours_encode(msg, emit_defaults)
        reference = oracle.reference_encode(msg, emit_defaults)
        assert oracle.same_json(ours, reference), (emit_defaults, ours, reference)


def check_decode(cls: type[message.Message], data: bytes) -> None:
    for ignore_unknown in (False, True):
        ours = oracle.ours_decode(cls, data, ignore_unknown)
        reference = oracle.reference_decode(cls, data, ignore_unknown)
        assert ours == reference, (data, ignore_unknown)


def test_every_message_type_has_a_generated_codec() -> None:
    # Every message of schemas/ (runtime-owned packages included) registers one.
    assert {path.name for path in FIXTURES.iterdir() if path.is_dir()} <= set(BY_NAME)
    assert "qmtl.dag.v1.Dag" in BY_NAME
    assert "qmtl.common.v1.ErrorDetail" in BY_NAME


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_fixture(path: Path) -> None:
    cls = BY_NAME[path.parent.name]
    msg = cls.FromString(path.read_bytes())
    check_encode(msg)
    reference_text = oracle.codec.encode(msg, oracle.Encoding.JSON)
    check_decode(cls, reference_text)
    # The canonical JSON of a fixture takes the fast path: no fallback to json_format.
    assert oracle.fast_path_decodes(cls, reference_text)
    text_fixture = path.with_suffix(".json")
    if text_fixture.exists():
        check_decode(cls, text_fixture.read_bytes())


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.DESCRIPTOR.full_name)
def test_drawn_messages(cls: type[message.Message]) -> None:
    @PROFILE
    @given(st.data())
    def check(data: st.DataObject) -> None:
        msg = data.draw(messages(cls))
        check_encode(msg)
        check_decode(cls, data.draw(json_variants(msg)))

    check()
