"""Golden fixtures: deterministic sample instances of every message, as binary and proto3 JSON.

For each message the samples together set every field: one "full" sample sets every singular
field (the first member of each oneof), two elements of each repeated field and two entries of
each map, recursing into nested messages and well-known types; each further oneof member gets
a sample of its own. Values derive from field names and numbers, so the output depends on the
schema alone.

Fixtures are append-only. A file is named after its message, its variant and a hash of its
bytes; the plugin never emits a name that already exists under the `existing=` directory, so a
regenerated schema only adds fixtures (for new messages or fields) and old bytes keep testing
that the current schema still reads them.

    tests/golden/<full.message.Name>/<variant>-<sha256[:12]>.binpb
    tests/golden/<full.message.Name>/<variant>-<sha256[:12]>.json
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor, json_format, message, message_factory
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import GeneratorError, OutputFile, parse_options, run

FD = descriptor.FieldDescriptor
# Beyond this depth nested messages stay unset, which ends recursive types such as Struct.
MAX_DEPTH = 4
# Past 2**53 so that 64-bit integers must travel as JSON strings to survive.
BIG = 2**53 + 1
FIXED_SECONDS = 1_767_323_045  # 2026-01-02T03:04:05Z
WELL_KNOWN_PREFIX = "google.protobuf."


@dataclass(frozen=True, slots=True)
class Sample:
    """One fixture: a message instance and the variant name it is filed under."""

    variant: str
    instance: message.Message


def full_sample(desc: descriptor.Descriptor) -> Sample:
    """The first sample of `desc`: every singular field set, the first member of each oneof."""
    full = message_factory.GetMessageClass(desc)()
    _fill(full, depth=0, choice={})
    return Sample("full", full)


def samples_for(desc: descriptor.Descriptor) -> list[Sample]:
    """The samples that together set every field of `desc`, `full_sample` first."""
    cls = message_factory.GetMessageClass(desc)
    samples = [full_sample(desc)]
    for oneof in desc.oneofs:
        if _is_synthetic(oneof):
            continue
        for member in oneof.fields[1:]:
            variant = cls()
            _fill(variant, depth=0, choice={oneof.full_name: member.name})
            samples.append(Sample(f"{oneof.name}-{member.name}", variant))
    return samples


def _is_synthetic(oneof: descriptor.OneofDescriptor) -> bool:
    # proto3 `optional` wraps its field in a one-member oneof that is not a real choice.
    return len(oneof.fields) == 1 and oneof.name.startswith("_")


def _fill(msg: message.Message, depth: int, choice: dict[str, str]) -> None:
    desc = msg.DESCRIPTOR
    if desc.full_name.startswith(WELL_KNOWN_PREFIX) and _fill_well_known(msg):
        return
    for fld in desc.fields:
        oneof = fld.containing_oneof
        if oneof is not None and not _is_synthetic(oneof):
            wanted = choice.get(oneof.full_name, oneof.fields[0].name)
            if fld.name != wanted:
                continue
        if fld.message_type is not None and depth >= MAX_DEPTH:
            continue
        _set_field(msg, fld, depth)


def _set_field(msg: message.Message, fld: descriptor.FieldDescriptor, depth: int) -> None:
    if _is_map(fld):
        container = getattr(msg, fld.name)
        key_fld, value_fld = (
            fld.message_type.fields_by_name["key"],
            fld.message_type.fields_by_name["value"],
        )
        for index in (1, 2):
            key = _scalar(key_fld, index)
            if value_fld.message_type is not None:
                _fill(container[key], depth + 1, {})
            else:
                container[key] = _scalar(value_fld, index)
        return
    if _is_repeated(fld):
        container = getattr(msg, fld.name)
        for index in (1, 2):
            if fld.message_type is not None:
                _fill(container.add(), depth + 1, {})
            else:
                container.append(_scalar(fld, index))
        return
    if fld.message_type is not None:
        child = getattr(msg, fld.name)
        _fill(child, depth + 1, {})
        child.SetInParent()
        return
    setattr(msg, fld.name, _scalar(fld, 1))


def _is_repeated(fld: descriptor.FieldDescriptor) -> bool:
    return bool(fld.is_repeated)


def _is_map(fld: descriptor.FieldDescriptor) -> bool:
    return (
        _is_repeated(fld)
        and fld.message_type is not None
        and fld.message_type.GetOptions().map_entry
    )


def _scalar(fld: descriptor.FieldDescriptor, index: int) -> Any:
    """A value for a scalar or enum field, distinct per field and per element index."""
    n = fld.number * 10 + index
    kind = fld.type
    if kind == FD.TYPE_STRING:
        return f"{fld.name}-{index}"
    if kind == FD.TYPE_BYTES:
        return f"{fld.name}\x00\xff{index}".encode("latin-1")
    if kind == FD.TYPE_BOOL:
        return index == 1
    if kind == FD.TYPE_ENUM:
        values = [v.number for v in fld.enum_type.values if v.number != 0] or [0]
        return values[(index - 1) % len(values)]
    if kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return n + 0.5
    if kind in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return -(BIG + n) if index == 2 else BIG + n
    if kind in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return BIG + n
    if kind in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return -n if index == 2 else n
    if kind in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return n
    raise GeneratorError(f"golden: no sample value for field {fld.full_name} of type {kind}")


def _fill_well_known(msg: message.Message) -> bool:
    """Sets a well-known type to a value that exercises its special JSON form."""
    name = msg.DESCRIPTOR.full_name.removeprefix(WELL_KNOWN_PREFIX)
    if name == "Timestamp":
        msg.seconds, msg.nanos = FIXED_SECONDS, 123_456_789  # type: ignore[attr-defined]
    elif name == "Duration":
        msg.seconds, msg.nanos = 1, 500_000_000  # type: ignore[attr-defined]
    elif name == "Struct":
        json_format.ParseDict(
            {
                "name": "sample",
                "count": 3,
                "ratio": 0.5,
                "on": True,
                "none": None,
                "list": ["a", 1],
                "nested": {"k": "v"},
            },
            msg,
        )
    elif name == "Value":
        json_format.ParseDict({"k": [1, "two", None, False]}, msg)
    elif name == "ListValue":
        json_format.ParseDict([1, "two", {"k": None}], msg)
    elif name == "FieldMask":
        msg.paths.extend(["node_id", "spec.interval"])  # type: ignore[attr-defined]
    elif name == "Empty":
        pass
    elif name.endswith("Value") and name != "Value":  # wrappers: Int64Value, StringValue, ...
        _set_field(msg, msg.DESCRIPTOR.fields_by_name["value"], MAX_DEPTH)
    else:
        return False
    return True


def to_json(instance: message.Message) -> str:
    """The canonical proto3 JSON of a fixture: camelCase names, sorted keys, two-space indent."""
    text = json_format.MessageToJson(instance, indent=2, sort_keys=True, ensure_ascii=False)
    return text + "\n"


def fixture_files(schema: Schema, existing: Path | None) -> Iterator[OutputFile]:
    for desc in sorted(schema.messages(), key=lambda d: d.full_name):
        for sample in samples_for(desc):
            data = sample.instance.SerializeToString(deterministic=True)
            stem = f"{desc.full_name}/{sample.variant}-{hashlib.sha256(data).hexdigest()[:12]}"
            if existing is not None and (existing / f"{stem}.binpb").exists():
                continue
            yield OutputFile(f"{stem}.binpb", data)
            yield OutputFile(f"{stem}.json", to_json(sample.instance))


@dataclass(frozen=True, slots=True)
class GoldenOptions:
    # Directory of the fixtures already committed: names found there are not written again.
    existing: str = ""


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    options = parse_options("golden", request.parameter, GoldenOptions)
    existing = Path(options.existing) if options.existing else None
    yield from fixture_files(Schema.from_request(request), existing)


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
