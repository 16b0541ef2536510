"""Snapshots of the generators' exact output on small schemas that hit their edge cases.

Each case compiles an inline proto and runs the Python plugins on it; the outputs (or the
GeneratorError text) must equal the files under tests/codegen/snapshots/<case>/. After an
intended change, rewrite them with `UPDATE_SNAPSHOTS=1 .venv/bin/pytest
tests/codegen/test_snapshots.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import grpc_adapter, handlers, http_client, http_routes, openapi
from qmtl_codegen.plugin import GeneratorError
from tests.codegen.test_http_generators import compile_request
from tests.codegen.test_name_collisions import SOURCE as COLLISIONS

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"

Generate = Callable[[plugin_pb2.CodeGeneratorRequest], Iterable[Any]]

HEADER = """
syntax = "proto3";

package qmtlprobe.v1;

import "google/api/annotations.proto";
import "google/api/field_behavior.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "qmtl/api/v1/access.proto";
import "qmtl/common/v1/error.proto";
import "qmtl/common/v1/error_code.proto";
import "qmtl/common/v1/match_mode.proto";
import "qmtl/common/v1/paging.proto";
"""

PATHS = (
    HEADER
    + """
service PathService {
  // Every variable form the routers serve, a dotted field and custom verbs.
  rpc GetShelf(ShelfRequest) returns (Shelf) {
    option (google.api.http) = {
      get: "/v1/probe/shelves/{shelf_id}"
      additional_bindings {get: "/v1/probe/by-star/{shelf_id=*}"}
      additional_bindings {get: "/v1/probe/by-name/{name=**}"}
      additional_bindings {get: "/v1/probe/pages/{page.page_token}/shelves"}
      additional_bindings {get: "/v1/probe/shelves:search"}
      additional_bindings {get: "/v1/probe/shelves/{shelf_id}/books:peek"}
    };
    option (qmtl.api.v1.access) = {access: ACCESS_PUBLIC_READ required_scopes: "probe:read"};
  }
  rpc MoveShelf(ShelfRequest) returns (Shelf) {
    option (google.api.http) = {
      post: "/v1/probe/internal/shelves/{shelf_id}/books:move"
      body: "*"
    };
    option (qmtl.api.v1.access) = {access: ACCESS_INTERNAL};
  }
}

message ShelfRequest {
  string shelf_id = 1;
  string name = 2;
  qmtl.common.v1.PageRequest page = 3;
}

message Shelf {
  string shelf_id = 1;
}
"""
)

QUERY = (
    HEADER
    + """
service QueryService {
  // Every field kind as a query parameter.
  rpc Find(FindRequest) returns (FindResponse) {
    option (google.api.http) = {get: "/v1/probe/things"};
    option (qmtl.api.v1.access) = {access: ACCESS_PUBLIC_READ allow_anonymous: true};
  }
}

message Inner {
  int32 depth = 1 [(google.api.field_behavior) = REQUIRED];
  Inner again = 2;
}

message FindRequest {
  double f_double = 1;
  float f_float = 2;
  int64 f_int64 = 3;
  uint64 f_uint64 = 4;
  int32 f_int32 = 5;
  fixed64 f_fixed64 = 6;
  fixed32 f_fixed32 = 7;
  bool f_bool = 8;
  string f_string = 9;
  bytes f_bytes = 10;
  uint32 f_uint32 = 11;
  sfixed32 f_sfixed32 = 12;
  sfixed64 f_sfixed64 = 13;
  sint32 f_sint32 = 14;
  sint64 f_sint64 = 15;
  qmtl.common.v1.MatchMode f_enum = 16;
  optional string f_optional = 17;
  repeated string f_repeated = 18;
  repeated qmtl.common.v1.MatchMode f_repeated_enum = 19;
  google.protobuf.Timestamp f_timestamp = 20;
  google.protobuf.Duration f_duration = 21;
  google.protobuf.FieldMask f_mask = 22;
  google.protobuf.Int64Value f_wrapper = 23;
  repeated google.protobuf.Timestamp f_timestamps = 24;
  Inner f_nested = 25 [(google.api.field_behavior) = REQUIRED];
  map<string, string> f_map = 26;
  repeated Inner f_messages = 27;
  google.protobuf.Struct f_struct = 28;
  int32 f_required = 29 [(google.api.field_behavior) = REQUIRED];
}

message FindResponse {
  repeated string names = 1;
}
"""
)

RESPONSE_BODY = PATHS.replace(
    'get: "/v1/probe/shelves/{shelf_id}"',
    'get: "/v1/probe/shelves/{shelf_id}"\n      response_body: "shelf_id"',
)
VERB_AFTER_VARIABLE = PATHS.replace("/v1/probe/shelves:search", "/v1/probe/shelves/{name}:search")
SEGMENTS_PATTERN = PATHS.replace("{name=**}", "{name=shelves/*}")

# The Python plugins of buf.gen.yaml that write modules per service file.
MODULES: tuple[Generate, ...] = (
    handlers.generate,
    http_routes.generate,
    http_client.generate,
    grpc_adapter.generate,
)


def openapi_paths(request: plugin_pb2.CodeGeneratorRequest) -> Iterable[tuple[str, str]]:
    """Only the `paths` (the operation objects) of the internal and public documents."""
    for output in openapi.generate(request):
        # Per area, public and internal; the merged public.openapi.json repeats them.
        if output.name.startswith("qmtlprobe."):
            paths = json.loads(output.content)["paths"]
            name = output.name.replace(".json", ".paths.json")
            yield name, json.dumps(paths, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    modules: bool = True  # the per-service modules
    openapi: bool = False  # the OpenAPI operation objects


CASES = (
    Case("collisions", COLLISIONS.replace("qmtlclash", "qmtlprobe")),
    Case("path_templates", PATHS, openapi=True),
    Case("query_parameters", QUERY, openapi=True),
    Case("response_body_refused", RESPONSE_BODY),
    Case("verb_after_variable_refused", VERB_AFTER_VARIABLE),
    Case("segments_pattern_refused", SEGMENTS_PATTERN),
    # OpenAPI refuses what the routers refuse, with the same words: it used to document both.
    Case("openapi_response_body_refused", RESPONSE_BODY, modules=False, openapi=True),
    Case("openapi_segments_pattern_refused", SEGMENTS_PATTERN, modules=False, openapi=True),
)


def outputs(case: Case, tmp_path: Path) -> dict[str, str]:
    request = compile_request(tmp_path, case.source)
    found: dict[str, str] = {}
    try:
        if case.modules:
            for generate in MODULES:
                for output in generate(request):
                    # `.snap`: the linters and the type checker must not read them as modules.
                    found[output.name.replace("/", "_") + ".snap"] = output.content
        if case.openapi:
            found.update(openapi_paths(request))
    except GeneratorError as exc:
        return {"error.txt": f"{exc}\n"}
    return found


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_output_matches_the_snapshot(case: Case, tmp_path: Path) -> None:
    directory = SNAPSHOTS / case.name
    found = outputs(case, tmp_path)
    if UPDATE:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in set(p.name for p in directory.iterdir()) - set(found):
            (directory / stale).unlink()
        for name, content in found.items():
            (directory / name).write_text(content)
    expected = {p.name: p.read_text() for p in sorted(directory.glob("*"))}
    assert sorted(found) == sorted(expected), "run with UPDATE_SNAPSHOTS=1 and review the diff"
    for name, content in found.items():
        assert content == expected[name], f"{case.name}/{name} differs from its snapshot"
