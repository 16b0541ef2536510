"""Golden fixtures keep the wire stable: old bytes and JSON must still read and write the same.

Fixtures live in tests/golden/fixtures/<full.message.Name>/ as .binpb and .json pairs made by
`make generate` (qmtl_codegen.golden). They are append-only, so each one pins the encoding of
the schema as it was when the fixture was written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import descriptor, descriptor_pool, json_format, message, message_factory

from qmtl_codegen.golden import to_json
from tests.pb2_modules import generated_pb2_modules

FIXTURES = Path(__file__).parent / "fixtures"


def _walk(desc: descriptor.Descriptor) -> Iterator[descriptor.Descriptor]:
    if desc.GetOptions().map_entry:
        return
    yield desc
    for nested in desc.nested_types:
        yield from _walk(nested)


def schema_messages() -> list[descriptor.Descriptor]:
    """Every message our schemas declare (qmtl.* packages), nested ones included."""
    modules = list(generated_pb2_modules())  # importing registers every message in the pool
    found: dict[str, descriptor.Descriptor] = {}
    for module in modules:
        for top in module.DESCRIPTOR.message_types_by_name.values():
            for desc in _walk(top):
                found[desc.full_name] = desc
    return [found[name] for name in sorted(found)]


def message_class(full_name: str) -> type[message.Message]:
    desc = descriptor_pool.Default().FindMessageTypeByName(full_name)
    return message_factory.GetMessageClass(desc)


def fixture_stems() -> list[Path]:
    return sorted(path.with_suffix("") for path in FIXTURES.glob("*/*.binpb"))


STEMS = fixture_stems()
MESSAGES = schema_messages()


def _id(stem: Path) -> str:
    return f"{stem.parent.name}/{stem.name}"


def test_fixtures_and_messages_are_found() -> None:
    # An empty list would silently turn every parametrized test below into a skip.
    assert STEMS, f"no fixtures under {FIXTURES}: run `make generate`"
    assert len(MESSAGES) > 50, "the generated messages were not found on the import path"


@pytest.mark.parametrize("stem", STEMS, ids=_id)
def test_binary_decodes_and_reencodes_to_identical_bytes(stem: Path) -> None:
    data = stem.with_suffix(".binpb").read_bytes()
    decoded = message_class(stem.parent.name).FromString(data)
    assert decoded.SerializeToString(deterministic=True) == data


@pytest.mark.parametrize("stem", STEMS, ids=_id)
def test_json_round_trip_is_stable(stem: Path) -> None:
    text = stem.with_suffix(".json").read_text()
    parsed = json_format.Parse(text, message_class(stem.parent.name)())
    assert to_json(parsed) == text


@pytest.mark.parametrize("stem", STEMS, ids=_id)
def test_binary_and_json_fixtures_are_the_same_message(stem: Path) -> None:
    cls = message_class(stem.parent.name)
    from_binary = cls.FromString(stem.with_suffix(".binpb").read_bytes())
    from_json = json_format.Parse(stem.with_suffix(".json").read_text(), cls())
    assert from_binary == from_json


@pytest.mark.parametrize("desc", MESSAGES, ids=lambda d: d.full_name)
def test_every_message_has_fixtures_that_set_every_field(desc: descriptor.Descriptor) -> None:
    folder = FIXTURES / desc.full_name
    samples = sorted(folder.glob("*.binpb"))
    assert samples, f"{desc.full_name} has no golden fixture: run `make generate`"
    cls = message_class(desc.full_name)
    covered: set[str] = set()
    for path in samples:
        covered.update(field.name for field, _ in cls.FromString(path.read_bytes()).ListFields())
    missing = sorted({field.name for field in desc.fields} - covered)
    assert not missing, f"no fixture of {desc.full_name} sets {missing}: run `make generate`"
