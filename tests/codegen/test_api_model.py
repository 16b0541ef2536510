"""The API model reads each rpc once: bindings, access, errors, idempotency and paging."""

from __future__ import annotations

from pathlib import Path

import pytest

from qmtl_codegen import httpmodel
from qmtl_codegen.api import model
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import GeneratorError
from tests.codegen.test_http_generators import compile_request

SOURCE = """
syntax = "proto3";

package qmtlprobe.v1;

import "google/api/annotations.proto";
import "qmtl/api/v1/access.proto";
import "qmtl/api/v1/rpc_errors.proto";
import "qmtl/common/v1/error_code.proto";
import "qmtl/common/v1/paging.proto";

service ProbeService {
  rpc ListThings(ListThingsRequest) returns (ListThingsResponse) {
    option (google.api.http) = {get: "/v1/probe/things"};
    option (qmtl.api.v1.access) = {access: ACCESS_PUBLIC_READ};
    option (qmtl.api.v1.errors) = {codes: ["E_NOT_FOUND", "E_VALIDATION"]};
  }
  rpc PutThing(Thing) returns (Thing) {
    option (google.api.http) = {put: "/v1/probe/internal/things/{id}" body: "*"};
    option (qmtl.api.v1.access) = {access: ACCESS_INTERNAL};
  }
  rpc TouchThing(Thing) returns (Thing) {
    option idempotency_level = IDEMPOTENT;
    option (qmtl.api.v1.access) = {access: ACCESS_INTERNAL};
  }
}

message Thing { string id = 1; }

message ListThingsRequest { qmtl.common.v1.PageRequest page = 1; }

message ListThingsResponse {
  repeated Thing things = 1;
  qmtl.common.v1.PageInfo page_info = 2;
}
"""


def schema_of(tmp_path: Path, source: str = SOURCE) -> Schema:
    return Schema.from_request(compile_request(tmp_path, source))


def test_rpcs_are_read_once_with_their_traits(tmp_path: Path) -> None:
    (service,) = model.services(schema_of(tmp_path), include_grpc_only=True)
    listed, put, touch = service.rpcs
    assert listed.errors == ("E_NOT_FOUND", "E_VALIDATION")
    assert (listed.idempotent, put.idempotent, touch.idempotent) == (True, False, True)
    assert listed.paging == model.Paging("page", "page_info", "things")
    assert put.paging is None
    assert touch.bindings == ()
    assert service.http_rpcs == (listed, put)
    assert put.bindings[0].path.fields == ("id",)
    assert [q.path.dotted for q in listed.bindings[0].query] == [
        "page.page_size",
        "page.page_token",
    ]


def test_grpc_only_rpcs_join_only_when_asked(tmp_path: Path) -> None:
    schema = schema_of(tmp_path)
    (http_only,) = httpmodel.file_models(schema)
    (everything,) = httpmodel.file_models(schema, include_grpc_only=True)
    assert [r.name for r in http_only.services[0].all_rpcs] == ["ListThings", "PutThing"]
    service = everything.services[0]
    assert [r.name for r in service.rpcs] == ["ListThings", "PutThing"]
    assert [r.name for r in service.all_rpcs] == ["ListThings", "PutThing", "TouchThing"]
    touch = service.all_rpcs[2]
    assert (touch.routes, touch.idempotent) == ((), True)
    assert service.rpcs[0].paged == httpmodel.PagingModel("page", "page_info", "things")
    assert service.rpcs[0].errors == ("E_NOT_FOUND", "E_VALIDATION")


def test_a_file_with_only_grpc_rpcs_is_a_model_only_when_asked(tmp_path: Path) -> None:
    source = SOURCE.replace('option (google.api.http) = {get: "/v1/probe/things"};', "").replace(
        'option (google.api.http) = {put: "/v1/probe/internal/things/{id}" body: "*"};', ""
    )
    schema = schema_of(tmp_path, source)
    assert httpmodel.file_models(schema) == []
    (everything,) = httpmodel.file_models(schema, include_grpc_only=True)
    assert [r.routes for r in everything.services[0].all_rpcs] == [(), (), ()]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '"E_NOT_FOUND", "E_VALIDATION"',
            '"E_NOT_FOUND", "E_NOPE"',
            "ListThings: (qmtl.api.v1.errors) names 'E_NOPE', which is not a wire code of "
            "qmtl.common.v1.ErrorCode",
        ),
        (
            '"E_NOT_FOUND", "E_VALIDATION"',
            '"E_NOT_FOUND", "E_NOT_FOUND"',
            "ListThings: (qmtl.api.v1.errors) lists a code twice",
        ),
        (
            "option (qmtl.api.v1.access) = {access: ACCESS_INTERNAL};\n  }\n}",
            "}\n}",
            "TouchThing: option (qmtl.api.v1.access).access is required",
        ),
        (
            "rpc TouchThing(Thing) returns (Thing)",
            "rpc TouchThing(stream Thing) returns (Thing)",
            "TouchThing: streaming rpcs are not supported",
        ),
        (
            '{get: "/v1/probe/things"}',
            '{get: "/v1/probe/things" response_body: "things"}',
            "ListThings: response_body is not supported",
        ),
        (
            'body: "*"',
            'body: "id"',
            "PutThing: body id must name a singular message field",
        ),
        ('{get: "/v1/probe/things"}', '{get: "/v1/probe/{page}"}', "path variable page must be"),
    ],
)
def test_rules_are_generator_errors_naming_the_rpc(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert SOURCE.count(old) == 1
    schema = schema_of(tmp_path, SOURCE.replace(old, new))
    with pytest.raises(GeneratorError) as raised:
        model.services(schema, include_grpc_only=True)
    assert str(raised.value).startswith("qmtlprobe.v1.ProbeService.")
    assert message in str(raised.value)


def test_without_the_catalogue_in_the_request_codes_are_taken_as_written(tmp_path: Path) -> None:
    # A plugin run on one directory may not see error_code.proto; the `strategy: all` runs do.
    source = SOURCE.replace('import "qmtl/common/v1/error_code.proto";\n', "").replace(
        '"E_VALIDATION"', '"E_ANYTHING"'
    )
    (service,) = model.services(schema_of(tmp_path, source))
    assert service.rpcs[0].errors == ("E_NOT_FOUND", "E_ANYTHING")
