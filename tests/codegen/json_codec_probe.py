"""A small inline schema with every JSON-mapping case, compiled and run through the JSON codec
plugin: its messages (protoc's --python_out) and its `_json` module, importable together.

Shared by the plugin's snapshot test and the per-rule tests (test_json_codec_rules.py).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import grpc_tools
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc

from qmtl_codegen import json_codec

PROTO = "qmtljsonprobe/v1/codec_probe.proto"
MODULE = "qmtljsonprobe.v1.codec_probe"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"

SOURCE = """
syntax = "proto3";

package qmtljsonprobe.v1;

import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Color {
  COLOR_UNSPECIFIED = 0;
  COLOR_RED = 1;
  COLOR_BLUE = 2;
}

message Scalars {
  int32 i32 = 1;
  int64 i64 = 2;
  uint64 u64 = 3;
  fixed64 f64 = 4;
  sint64 s64 = 5;
  uint32 u32 = 6;
  double dbl = 7;
  float flt = 8;
  bool flag = 9;
  string text = 10;
  bytes data = 11;
  Color color = 12;
  optional int64 maybe = 13;
  string custom = 14 [json_name = "renamed"];
  repeated int64 many = 15;
  repeated Color colors = 16;
  repeated bytes blobs = 17;
}

message Maps {
  map<string, int64> by_name = 1;
  map<int32, string> by_int = 2;
  map<bool, Scalars> by_flag = 3;
  map<uint64, Color> by_u64 = 4;
}

message Known {
  google.protobuf.Timestamp at = 1;
  google.protobuf.Duration took = 2;
  google.protobuf.Struct extra = 3;
  google.protobuf.Value any_value = 4;
  google.protobuf.ListValue items = 5;
  google.protobuf.Any packed = 6;
  google.protobuf.FieldMask mask = 7;
  google.protobuf.Int64Value big = 8;
  google.protobuf.BytesValue blob = 9;
  google.protobuf.Empty nothing = 10;
  repeated google.protobuf.Timestamp times = 11;
}

message Choice {
  oneof pick {
    string name = 1;
    int64 number = 2;
    Scalars nested = 3;
  }
  Choice child = 4;

  message Inner {
    Color color = 1;
  }
  Inner inner = 5;
}

// Few scalar fields: printed inline in the list of a repeated field.
message Pair {
  string label = 1;
  int64 count = 2;
  bool on = 3;
  bytes data = 4;
}

message Pairs {
  repeated Pair pairs = 1;
  repeated Choice.Inner inners = 2;
}
"""


def request(tmp_path: Path, python_out: Path | None = None) -> plugin_pb2.CodeGeneratorRequest:
    proto = tmp_path / "protos" / PROTO
    proto.parent.mkdir(parents=True, exist_ok=True)
    proto.write_text(SOURCE)
    descriptors = tmp_path / "probe.binpb"
    outputs = [f"--python_out={python_out}"] if python_out is not None else []
    status = protoc.main(
        [
            "protoc",
            f"-I{tmp_path / 'protos'}",
            f"-I{WELL_KNOWN}",
            "--include_imports",
            f"--descriptor_set_out={descriptors}",
            *outputs,
            PROTO,
        ]
    )
    assert status == 0, "protoc could not compile the JSON codec probe schema"
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptors.read_bytes()).file
    return plugin_pb2.CodeGeneratorRequest(file_to_generate=[PROTO], proto_file=files)


def generated_source(tmp_path: Path) -> dict[str, str]:
    """The plugin's output files on the probe schema, by name."""
    return {out.name: str(out.content) for out in json_codec.generate(request(tmp_path))}


def load(tmp_path: Path) -> tuple[ModuleType, ModuleType]:
    """The probe's message module and its generated `_json` module, imported."""
    out = tmp_path / "python"
    out.mkdir(parents=True, exist_ok=True)
    for output in json_codec.generate(request(tmp_path, python_out=out)):
        (out / output.name).write_text(str(output.content))
    sys.path.insert(0, str(out))
    try:
        messages = importlib.import_module(MODULE + "_pb2")
        codec_module = importlib.import_module(MODULE + "_json")
    finally:
        sys.path.remove(str(out))
    return messages, codec_module
