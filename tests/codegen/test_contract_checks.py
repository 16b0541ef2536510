"""qmtl_codegen.contract_checks finds the breaks buf cannot see, one rule at a time.

Each test compiles a small probe schema twice, before and after one edit, into descriptor sets
with source info (grpc_tools' protoc, with the real option files of schemas/qmtl/api/v1 and the
vendored google/api protos) and compares them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from qmtl_codegen.contract_checks import (
    ACCESS_SAME,
    ERROR_INFO_SAME,
    EVENT_TYPE_SAME,
    FIELD_NOT_NEWLY_REQUIRED,
    HTTP_SAME_ROUTE,
    Finding,
    compare,
)
from tests.codegen.conftest import PROTO_DEPS, SCHEMAS, WELL_KNOWN

Build = Callable[[str], descriptor_pb2.FileDescriptorSet]

PROBE = "qmtl/probe/v1/probe.proto"
BASE = """\
syntax = "proto3";

package qmtl.probe.v1;

import "google/api/annotations.proto";
import "google/api/field_behavior.proto";
import "qmtl/api/v1/access.proto";
import "qmtl/api/v1/error_code_options.proto";

enum ProbeCode {
  PROBE_CODE_UNSPECIFIED = 0;
  PROBE_CODE_GONE = 1 [(qmtl.api.v1.error_info) = {
    code: "E_GONE"
    http_status: 404
    grpc_code: NOT_FOUND
  }];
}

message GetThingRequest {
  string thing_id = 1 [(google.api.field_behavior) = REQUIRED];
  string filter = 2;
  message Window {
    int64 start = 1;
  }
  Window window = 3;
}

message Thing {
  string name = 1;
}

message ProbeEvent {
  string type = 1;
  oneof payload {
    // type `qmtl.probe.thing_created`.
    Thing thing_created = 2;
  }
}

service ProbeService {
  rpc GetThing(GetThingRequest) returns (Thing) {
    option (google.api.http) = {get: "/v1/probe/things/{thing_id}"};
    option (qmtl.api.v1.access) = {
      access: ACCESS_PUBLIC_READ
      required_scopes: ["things:read", "probe:read"]
    };
  }
  rpc PutThing(Thing) returns (Thing) {
    option (google.api.http) = {
      post: "/v1/probe/things"
      body: "*"
    };
    option (qmtl.api.v1.access) = {access: ACCESS_INTERNAL};
  }
}
"""


@pytest.fixture
def compile_probe(tmp_path: Path) -> Build:
    counter = iter(range(1_000))

    def build(text: str) -> descriptor_pb2.FileDescriptorSet:
        src = tmp_path / f"src{next(counter)}"
        (src / PROBE).parent.mkdir(parents=True)
        (src / PROBE).write_text(text)
        out = src / "set.binpb"
        status = protoc.main(
            [
                "protoc",
                f"-I{src}",
                f"-I{SCHEMAS}",
                f"-I{PROTO_DEPS}",
                f"-I{WELL_KNOWN}",
                "--include_imports",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                PROBE,
            ]
        )
        assert status == 0, f"protoc could not compile the probe:\n{text}"
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())

    return build


def changed(compile_probe: Build, old: str, new: str) -> tuple[list[Finding], str]:
    assert BASE.count(old) == 1, f"{old!r} must occur exactly once in the probe"
    after = BASE.replace(old, new)
    return compare(compile_probe(BASE), compile_probe(after)), after


def line_of(text: str, snippet: str) -> int:
    """1-based line of the first line containing `snippet`, as buf and our checks count."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if snippet in line)


def only(findings: list[Finding], rule: str) -> Finding:
    assert [f.rule for f in findings] == [rule], [f.format() for f in findings]
    return findings[0]


def test_unchanged_schema_has_no_findings(compile_probe: Build) -> None:
    findings, _ = changed(compile_probe, "string filter = 2;", "string filter = 2;")
    assert findings == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(
            "  rpc PutThing(",
            "  rpc ListThings(GetThingRequest) returns (Thing) {\n"
            '    option (google.api.http) = {get: "/v1/probe/things"};\n'
            "    option (qmtl.api.v1.access) = {access: ACCESS_PUBLIC_READ};\n"
            "  }\n  rpc PutThing(",
            id="new-rpc-with-route-and-access",
        ),
        pytest.param(
            '{get: "/v1/probe/things/{thing_id}"}',
            '{\n      get: "/v1/probe/things/{thing_id}"\n'
            '      additional_bindings {get: "/v1/probe/thing/{thing_id}"}\n    }',
            id="extra-http-binding",
        ),
        pytest.param(
            'required_scopes: ["things:read", "probe:read"]',
            'required_scopes: ["probe:read", "things:read"]',
            id="scopes-reordered",
        ),
        pytest.param(
            "  PROBE_CODE_GONE = 1",
            "  PROBE_CODE_BUSY = 2 [(qmtl.api.v1.error_info) = "
            '{code: "E_BUSY" http_status: 503}];\n'
            "  PROBE_CODE_GONE = 1",
            id="new-error-code",
        ),
        pytest.param(
            "  Window window = 3;",
            "  Window window = 3;\n  string note = 4;",
            id="new-optional-field",
        ),
        pytest.param(
            "    Thing thing_created = 2;",
            "    Thing thing_created = 2;\n    // type `qmtl.probe.thing_deleted`.\n"
            "    Thing thing_deleted = 3;",
            id="new-event-member",
        ),
        pytest.param(
            "message Thing {",
            "message NewRequest {\n  string id = 1 [(google.api.field_behavior) = REQUIRED];\n}\n\n"
            "message Thing {",
            id="required-field-in-new-message",
        ),
    ],
)
def test_additive_changes_pass(compile_probe: Build, old: str, new: str) -> None:
    findings, _ = changed(compile_probe, old, new)
    assert findings == [], [f.format() for f in findings]


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        pytest.param(
            '{get: "/v1/probe/things/{thing_id}"}',
            '{get: "/v1/probe/items/{thing_id}"}',
            'no longer serves HTTP route "GET /v1/probe/things/{thing_id}" (option '
            '"google.api.http"); it now serves "GET /v1/probe/items/{thing_id}".',
            id="path",
        ),
        pytest.param(
            '{get: "/v1/probe/things/{thing_id}"}',
            '{delete: "/v1/probe/things/{thing_id}"}',
            'it now serves "DELETE /v1/probe/things/{thing_id}".',
            id="verb",
        ),
        pytest.param(
            '    option (google.api.http) = {get: "/v1/probe/things/{thing_id}"};\n',
            "",
            "it now serves no HTTP route.",
            id="route-removed",
        ),
    ],
)
def test_http_route_change_is_breaking(compile_probe: Build, old: str, new: str, says: str) -> None:
    findings, after = changed(compile_probe, old, new)
    finding = only(findings, HTTP_SAME_ROUTE)
    assert finding.message.startswith('RPC "GetThing" on service "ProbeService" ')
    assert says in finding.message
    assert (finding.path, finding.line, finding.column) == (
        PROBE,
        line_of(after, "rpc GetThing"),
        3,
    )


def test_http_body_change_is_breaking(compile_probe: Build) -> None:
    findings, after = changed(compile_probe, 'body: "*"', 'body: "name"')
    finding = only(findings, HTTP_SAME_ROUTE)
    assert '"POST /v1/probe/things body=*"' in finding.message
    assert '"POST /v1/probe/things body=name"' in finding.message
    assert finding.line == line_of(after, "rpc PutThing")


@pytest.mark.parametrize(
    ("old", "new", "now"),
    [
        pytest.param(
            "access: ACCESS_PUBLIC_READ\n",
            "access: ACCESS_INTERNAL\n",
            "ACCESS_INTERNAL scopes [probe:read, things:read]",
            id="class",
        ),
        pytest.param(
            '["things:read", "probe:read"]',
            '["things:read", "probe:read", "probe:admin"]',
            "ACCESS_PUBLIC_READ scopes [probe:admin, probe:read, things:read]",
            id="scope-added",
        ),
        pytest.param(
            '["things:read", "probe:read"]',
            '["things:read"]',
            "ACCESS_PUBLIC_READ scopes [things:read]",
            id="scope-dropped",
        ),
        pytest.param(
            'required_scopes: ["things:read", "probe:read"]\n',
            'required_scopes: ["things:read", "probe:read"]\n      allow_anonymous: true\n',
            "ACCESS_PUBLIC_READ scopes [probe:read, things:read] allow_anonymous",
            id="anonymous",
        ),
    ],
)
def test_access_change_is_breaking(compile_probe: Build, old: str, new: str, now: str) -> None:
    findings, after = changed(compile_probe, old, new)
    finding = only(findings, ACCESS_SAME)
    assert finding.message == (
        'RPC "GetThing" on service "ProbeService" changed option "qmtl.api.v1.access" from '
        f'"ACCESS_PUBLIC_READ scopes [probe:read, things:read]" to "{now}".'
    )
    assert finding.line == line_of(after, "rpc GetThing")


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        pytest.param(
            "http_status: 404", "http_status: 410", "http_status from 404 to 410", id="http"
        ),
        pytest.param(
            'code: "E_GONE"', 'code: "E_MISSING"', 'code from "E_GONE" to "E_MISSING"', id="code"
        ),
        pytest.param(
            "grpc_code: NOT_FOUND",
            "grpc_code: FAILED_PRECONDITION",
            "grpc_code from NOT_FOUND to FAILED_PRECONDITION",
            id="grpc",
        ),
    ],
)
def test_error_info_change_is_breaking(compile_probe: Build, old: str, new: str, says: str) -> None:
    findings, after = changed(compile_probe, old, new)
    finding = only(findings, ERROR_INFO_SAME)
    assert finding.message == (
        'Enum value "PROBE_CODE_GONE" on enum "ProbeCode" changed option '
        f'"qmtl.api.v1.error_info": {says}.'
    )
    assert (finding.line, finding.column) == (line_of(after, "PROBE_CODE_GONE = 1"), 3)


def test_error_info_removed_is_breaking(compile_probe: Build) -> None:
    start = BASE.index(" [(qmtl.api.v1.error_info)")
    end = BASE.index("}];", start) + len("}]")
    findings, _ = changed(compile_probe, BASE[start:end], "")
    finding = only(findings, ERROR_INFO_SAME)
    assert 'code from "E_GONE" to unset' in finding.message


@pytest.mark.parametrize(
    ("old", "new", "field", "what"),
    [
        pytest.param(
            "string filter = 2;",
            "string filter = 2 [(google.api.field_behavior) = REQUIRED];",
            "filter",
            "is newly marked",
            id="existing-field",
        ),
        pytest.param(
            "    int64 start = 1;",
            "    int64 start = 1 [(google.api.field_behavior) = REQUIRED];",
            "start",
            "is newly marked",
            id="nested-message-field",
        ),
        pytest.param(
            "  Window window = 3;",
            "  Window window = 3;\n  string owner = 4 [(google.api.field_behavior) = REQUIRED];",
            "owner",
            "is a new field marked",
            id="new-field-in-existing-message",
        ),
    ],
)
def test_newly_required_field_is_breaking(
    compile_probe: Build, old: str, new: str, field: str, what: str
) -> None:
    findings, after = changed(compile_probe, old, new)
    finding = only(findings, FIELD_NOT_NEWLY_REQUIRED)
    assert f'with name "{field}"' in finding.message
    assert f"{what} (google.api.field_behavior) = REQUIRED" in finding.message
    assert finding.line == line_of(after, f" {field} = ")


def test_required_field_that_stays_required_passes(compile_probe: Build) -> None:
    findings, _ = changed(
        compile_probe,
        "string thing_id = 1 [(google.api.field_behavior) = REQUIRED];",
        "string thing_id = 1 [\n    (google.api.field_behavior) = REQUIRED,\n"
        "    (google.api.field_behavior) = IMMUTABLE\n  ];",
    )
    assert findings == []


@pytest.mark.parametrize(
    ("new", "now"),
    [
        pytest.param("// type `qmtl.probe.thing_made`.", '"qmtl.probe.thing_made"', id="renamed"),
        pytest.param("// The thing that was created.", "no event type", id="dropped"),
    ],
)
def test_event_type_change_is_breaking(compile_probe: Build, new: str, now: str) -> None:
    findings, after = changed(compile_probe, "// type `qmtl.probe.thing_created`.", new)
    finding = only(findings, EVENT_TYPE_SAME)
    assert finding.message == (
        'Field "2" with name "thing_created" on message "ProbeEvent" changed its event type '
        f'from "qmtl.probe.thing_created" to {now}.'
    )
    assert finding.line == line_of(after, "Thing thing_created = 2;")


def test_findings_print_like_buf_under_the_module_root(compile_probe: Build) -> None:
    findings, after = changed(compile_probe, "http_status: 404", "http_status: 500")
    line = line_of(after, "PROBE_CODE_GONE = 1")
    assert (
        only(findings, ERROR_INFO_SAME)
        .format("schemas")
        .startswith(f"schemas/{PROBE}:{line}:3: Enum value ")
    )
    assert findings[0].format("schemas").endswith(f" ({ERROR_INFO_SAME})")


def test_several_changes_are_all_reported_in_file_order(compile_probe: Build) -> None:
    after = (
        BASE.replace('body: "*"', 'body: "name"')
        .replace("http_status: 404", "http_status: 410")
        .replace("// type `qmtl.probe.thing_created`.", "// type `qmtl.probe.made`.")
    )
    findings = compare(compile_probe(BASE), compile_probe(after))
    assert [f.rule for f in findings] == [ERROR_INFO_SAME, EVENT_TYPE_SAME, HTTP_SAME_ROUTE]
    assert [f.line for f in findings] == sorted(f.line for f in findings)
