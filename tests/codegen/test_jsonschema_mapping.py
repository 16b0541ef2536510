"""The proto3 JSON mapping as JSON Schema: one function per rule, shared with OpenAPI.

The real schemas cover most rules; a probe file compiled here covers the field types they do
not use yet (wrappers, FieldMask, Empty, Any, non-string map keys, floats, deprecation).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor, descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc
from jsonschema import Draft202012Validator

from qmtl_codegen.decimal_range import INT64_RANGE_PATTERN, UINT64_RANGE_PATTERN
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.json_schema import message_schema
from qmtl_codegen.jsonmapping import JsonMapping, named_types
from qmtl_codegen.wellknown_patterns import DURATION_PATTERN
from tests.codegen.conftest import PROTO_DEPS, SCHEMAS, WELL_KNOWN

PROBE = """\
syntax = "proto3";

// Types the v1 schemas do not use yet.
package probe.v1;

import "google/api/field_behavior.proto";
import "google/protobuf/any.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/wrappers.proto";

// Level of a probe.
enum Level {
  // Not set.
  LEVEL_UNSPECIFIED = 0;
  // Old level.
  LEVEL_OLD = 1 [deprecated = true];
  // High level.
  LEVEL_HIGH = 2;
}

// Probe carries one field of each kind.
message Probe {
  option deprecated = true;

  // A nullable count.
  google.protobuf.Int64Value count = 1;
  // A nullable ratio.
  google.protobuf.DoubleValue ratio = 2;
  // A nullable name.
  google.protobuf.StringValue label = 3;
  // Fields to update.
  google.protobuf.FieldMask mask = 4;
  // Nothing.
  google.protobuf.Empty nothing = 5;
  // Anything.
  google.protobuf.Any anything = 6;
  // Blobs by number.
  map<int32, bytes> blobs = 7;
  // Flags by bool.
  map<bool, string> flags = 8;
  // A double.
  double weight = 9;
  // A float.
  float scale = 10;
  // An unsigned 64-bit number.
  fixed64 big = 11;
  // Renamed on the wire.
  string renamed = 12 [json_name = "otherName"];
  // Old field.
  string old = 13 [deprecated = true];
  // Set by the server.
  string server_id = 14 [(google.api.field_behavior) = OUTPUT_ONLY];
  // Free JSON.
  google.protobuf.Value any_json = 15;
  // A JSON list.
  google.protobuf.ListValue list = 16;
  // A level.
  Level level = 17;
  // The same type again.
  Probe child = 18;
  // Explicit presence.
  optional int32 maybe = 19;
  // A one-member oneof is a real oneof, unlike `optional`.
  oneof single {
    // Its only member.
    string only = 20;
  }
}
"""


def compile_probe(
    request: plugin_pb2.CodeGeneratorRequest,
    directory: Path,
    source: str,
    name: str = "probe/v1/probe.proto",
) -> plugin_pb2.CodeGeneratorRequest:
    """`request` plus the compiled `source` (and the imports it lacks), `source` the only target."""
    (directory / name).parent.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(source)
    out = directory / "probe.binpb"
    status = protoc.main(
        [
            "protoc",
            f"-I{directory}",
            f"-I{SCHEMAS}",
            f"-I{PROTO_DEPS}",
            f"-I{WELL_KNOWN}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            name,
        ]
    )
    assert status == 0, "the probe does not compile"
    known = {file.name for file in request.proto_file}
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    probe = plugin_pb2.CodeGeneratorRequest()
    probe.CopyFrom(request)
    probe.proto_file.extend(file for file in files if file.name not in known)
    probe.ClearField("file_to_generate")
    probe.file_to_generate.append(name)
    return probe


@pytest.fixture(scope="module")
def probe(
    codegen_request: plugin_pb2.CodeGeneratorRequest, tmp_path_factory: pytest.TempPathFactory
) -> Schema:
    directory = tmp_path_factory.mktemp("probe")
    return Schema.from_request(compile_probe(codegen_request, directory, PROBE))


def defs(name: str) -> str:
    return f"#/$defs/{name}"


def message(schema: Schema, full_name: str) -> dict[str, Any]:
    desc = schema.pool.FindMessageTypeByName(full_name)
    return JsonMapping(schema, defs).message(desc)


def prop(schema: Schema, full_name: str, json_name: str) -> dict[str, Any]:
    found: dict[str, Any] = message(schema, full_name)["properties"][json_name]
    return found


def validates(schema: dict[str, Any], instance: Any) -> bool:
    return Draft202012Validator(
        schema, format_checker=Draft202012Validator.FORMAT_CHECKER
    ).is_valid(instance)


def test_int64_is_a_decimal_string(schema: Schema) -> None:
    interval = prop(schema, "qmtl.dag.v1.QueueDescriptor", "interval")
    assert interval == {
        "type": "string",
        "format": "int64",
        "pattern": INT64_RANGE_PATTERN,
        "description": (
            "Interval in seconds of the emitting node; 0 when it has none (a plain\n"
            "int64, like every `interval` in the schemas)."
        ),
    }
    assert validates(interval, str(2**63 - 1))
    assert validates(interval, str(-(2**63)))
    assert validates(interval, "-60")
    assert not validates(interval, 60)
    assert not validates(interval, "1e3")
    # The range the parsers enforce: one past either end is refused.
    assert not validates(interval, str(2**63))
    assert not validates(interval, str(-(2**63) - 1))


def test_uint32_is_a_bounded_integer(schema: Schema) -> None:
    crc = prop(schema, "qmtl.dagmanager.v1.DiffRequest", "nodeIdsCrc32")
    assert (crc["type"], crc["format"], crc["minimum"], crc["maximum"]) == (
        "integer",
        "uint32",
        0,
        2**32 - 1,
    )
    assert not validates(crc, -1)
    assert not validates(crc, 2**32)


def test_json_name_is_honoured(schema: Schema) -> None:
    properties = message(schema, "qmtl.dag.v1.QueueDescriptor")["properties"]
    assert list(properties) == ["queue", "global", "nodeId", "interval", "tags"]
    assert properties["global"]["type"] == "boolean"


def test_timestamp_is_an_rfc3339_string(schema: Schema) -> None:
    created = prop(schema, "qmtl.dag.v1.Queue", "createdAt")
    assert (created["type"], created["format"]) == ("string", "date-time")
    assert validates(created, "2026-01-02T03:04:05.123456789Z")
    assert not validates(created, "yesterday")


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("1.5s", True),
        ("30s", True),
        ("-0.000000001s", True),
        ("315576000000s", True),
        ("-315576000000.999999999s", True),
        ("000315576000000s", True),
        ("315576000001s", False),
        ("-315576000001s", False),
        ("-119105087499875.453619236s", False),
        ("PT1S", False),
        ("1.5", False),
        ("1.5 s", False),
        ("1.1234567891s", False),
        ("1.s", False),
    ],
)
def test_duration_is_the_protobuf_duration_string(schema: Schema, text: str, valid: bool) -> None:
    retention = prop(schema, "qmtl.dag.v1.Queue", "retention")
    assert retention["pattern"] == DURATION_PATTERN
    assert "format" not in retention, "not ISO-8601"
    assert validates(retention, text) is valid


def test_bytes_are_base64(schema: Schema) -> None:
    payload = prop(schema, "qmtl.work.v1.WorkItem", "payload")
    assert payload["contentEncoding"] == "base64"
    assert validates(payload, "cGF5bG9hZAD/MQ==")
    assert not validates(payload, "not base64!")


def test_maps_are_objects_of_their_values(schema: Schema) -> None:
    queues = prop(schema, "qmtl.dag.v1.QueueMap", "queues")
    assert queues["type"] == "object"
    assert queues["additionalProperties"] == {"$ref": defs("qmtl.dag.v1.QueueDescriptor")}
    assert "propertyNames" not in queues, "string keys need no pattern"


def test_struct_is_a_free_form_object(schema: Schema) -> None:
    details = prop(schema, "qmtl.common.v1.ErrorDetail", "details")
    assert details["type"] == "object"
    assert "properties" not in details


def test_enums_are_their_value_names(schema: Schema) -> None:
    desc = schema.pool.FindEnumTypeByName("qmtl.common.v1.MatchMode")
    enum = JsonMapping(schema, defs).enum(desc)
    assert enum["type"] == "string"
    assert enum["enum"] == ["MATCH_MODE_UNSPECIFIED", "MATCH_MODE_ANY", "MATCH_MODE_ALL"]
    assert (
        "- `MATCH_MODE_ALL`: A node matches only if it carries every query tag"
        in (enum["description"])
    )
    assert prop(schema, "qmtl.dag.v1.TagQuery", "matchMode")["$ref"] == defs(
        "qmtl.common.v1.MatchMode"
    )


def test_required_field_behaviour_is_required(schema: Schema) -> None:
    request = message(schema, "qmtl.gateway.v1.GetQueuesByTagRequest")
    assert request["required"] == ["interval"]
    # proto3 `optional` adds presence, not a requirement, and no null.
    assert "required" not in message(schema, "qmtl.dagmanager.v1.ListNodesRequest")
    interval = prop(schema, "qmtl.dagmanager.v1.ListNodesRequest", "interval")
    assert interval["type"] == "string"


def test_a_oneof_allows_none_or_one_member_but_not_two(schema: Schema) -> None:
    event = message(schema, "qmtl.events.v1.Event")
    members = event["x-oneof"]["payload"]
    assert members[:2] == ["nodeStatusChanged", "queueUpdated"]
    assert len(members) == 7
    (constraint,) = event["allOf"]
    assert len(constraint["not"]["anyOf"]) == 7 * 6 // 2
    shape = {"allOf": event["allOf"]}
    assert validates(shape, {"id": "x"})
    assert validates(shape, {"queueUpdated": {}})
    assert not validates(shape, {"queueUpdated": {}, "dagChanged": {}})
    assert "Member of oneof `payload`" in event["properties"]["alertRaised"]["description"]


def test_wrappers_are_nullable(probe: Schema) -> None:
    count = prop(probe, "probe.v1.Probe", "count")
    assert count["type"] == ["string", "null"]
    assert count["pattern"] == INT64_RANGE_PATTERN
    assert validates(count, None)
    assert validates(count, "5")
    assert not validates(count, 5)
    assert prop(probe, "probe.v1.Probe", "label")["type"] == ["string", "null"]
    ratio = prop(probe, "probe.v1.Probe", "ratio")
    assert {"type": "null"} in ratio["anyOf"]
    assert all(validates(ratio, v) for v in (None, 0.5, "NaN", "-Infinity"))
    assert not validates(ratio, "0.5")


def test_floats_allow_their_special_strings(probe: Schema) -> None:
    weight = prop(probe, "probe.v1.Probe", "weight")
    assert all(validates(weight, v) for v in (1, 1.5, "NaN", "Infinity"))
    assert not validates(weight, "1.5")
    assert prop(probe, "probe.v1.Probe", "scale")["anyOf"][0]["format"] == "float"


def test_other_well_known_types(probe: Schema) -> None:
    assert prop(probe, "probe.v1.Probe", "mask")["type"] == "string"
    nothing = prop(probe, "probe.v1.Probe", "nothing")
    assert validates(nothing, {})
    assert not validates(nothing, {"a": 1})
    anything = prop(probe, "probe.v1.Probe", "anything")
    assert validates(anything, {"@type": "type.googleapis.com/x.Y", "a": 1})
    assert not validates(anything, {"a": 1})
    any_json = prop(probe, "probe.v1.Probe", "anyJson")
    assert all(validates(any_json, v) for v in (None, 1, "s", [1], {"k": None}))
    assert prop(probe, "probe.v1.Probe", "list")["type"] == "array"
    big = prop(probe, "probe.v1.Probe", "big")
    assert (big["format"], big["pattern"]) == ("uint64", UINT64_RANGE_PATTERN)
    assert validates(big, str(2**64 - 1))
    assert not validates(big, str(2**64))


def test_map_keys_other_than_strings_have_a_pattern(probe: Schema) -> None:
    blobs = prop(probe, "probe.v1.Probe", "blobs")
    assert blobs["propertyNames"] == {"pattern": "^-?[0-9]+$"}
    assert blobs["additionalProperties"]["contentEncoding"] == "base64"
    assert validates(blobs, {"1": "AA==", "-2": ""})
    assert not validates(blobs, {"one": "AA=="})
    flags = prop(probe, "probe.v1.Probe", "flags")
    assert validates(flags, {"true": "x"})
    assert not validates(flags, {"yes": "x"})


def test_deprecation_and_field_behaviour_are_carried(probe: Schema) -> None:
    probe_message = message(probe, "probe.v1.Probe")
    assert probe_message["deprecated"] is True
    assert probe_message["properties"]["old"]["deprecated"] is True
    assert probe_message["properties"]["serverId"]["readOnly"] is True
    assert "otherName" in probe_message["properties"]
    level = JsonMapping(probe, defs).enum(probe.pool.FindEnumTypeByName("probe.v1.Level"))
    assert level["x-enum-deprecated"] == ["LEVEL_OLD"]
    assert "- `LEVEL_OLD` (deprecated): Old level." in level["description"]


def test_optional_is_not_a_oneof_but_a_one_member_oneof_is(probe: Schema) -> None:
    probe_message = message(probe, "probe.v1.Probe")
    assert "Member of oneof" not in probe_message["properties"]["maybe"].get("description", "")
    assert "Member of oneof `single`" in probe_message["properties"]["only"]["description"]
    assert "x-oneof" not in probe_message, "a single member needs no constraint"


def test_a_recursive_message_refers_to_its_own_document(probe: Schema) -> None:
    desc = probe.pool.FindMessageTypeByName("probe.v1.Probe")
    document = message_schema(probe, desc, "urn:test:")
    assert document["properties"]["child"]["$ref"] == "#"
    assert set(document["$defs"]) == {"probe.v1.Level"}
    Draft202012Validator.check_schema(document)
    assert validates(document, {"child": {"child": {"count": "1"}}})
    assert not validates(document, {"child": {"child": {"count": 1}}})


def test_named_types_are_the_closure_without_inlined_well_known_types(schema: Schema) -> None:
    desc = schema.pool.FindMessageTypeByName("qmtl.common.v1.ErrorDetail")
    assert list(named_types([desc])) == ["qmtl.common.v1.ErrorDetail"]
    status = schema.pool.FindMessageTypeByName("qmtl.gateway.v1.GetStrategyStatusResponse")
    names = list(named_types([status]))
    assert names == sorted(names)
    assert {"qmtl.dag.v1.QueueMap", "qmtl.dag.v1.QueueDescriptor", "qmtl.dag.v1.StrategyState"} <= (
        set(names)
    )
    assert not [n for n in names if n.startswith("google.")]


def test_every_field_type_has_a_schema(schema: Schema) -> None:
    mapping = JsonMapping(schema, defs)
    kinds: set[int] = set()
    for desc in schema.messages():
        for fld in desc.fields:
            kinds.add(fld.type)
            assert mapping.field(fld), fld.full_name
    assert descriptor.FieldDescriptor.TYPE_MESSAGE in kinds
    assert re.fullmatch(DURATION_PATTERN, "0s")
