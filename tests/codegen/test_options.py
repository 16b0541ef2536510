"""The option readers decode our custom options from descriptors alone, without generated code."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor, descriptor_pb2, message_factory

from qmtl_codegen.api.pathtemplate import parse
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.options import (
    ACCESS_RULE,
    AccessInfo,
    ErrorInfo,
    HttpBinding,
    HttpRule,
    access_rule,
    error_info,
    extension_value,
    field_behaviors,
    http_rule,
    require_access,
)
from qmtl_codegen.plugin import GeneratorError
from tests.codegen.conftest import MakeSchema


def method(schema: Schema, full_name: str) -> descriptor.MethodDescriptor:
    service, name = full_name.rsplit(".", 1)
    return schema.pool.FindServiceByName(service).methods_by_name[name]


def test_gateway_queue_lookup_is_a_public_get(schema: Schema) -> None:
    rpc = method(schema, "qmtl.gateway.v1.GatewayService.GetQueuesByTag")
    assert http_rule(schema.pool, rpc) == HttpRule(HttpBinding("GET", "/v1/gateway/queues/by-tag"))
    info = access_rule(schema.pool, rpc)
    assert info == AccessInfo("ACCESS_PUBLIC_READ", ("queues:read",), allow_anonymous=False)
    assert info.exposure == "PUBLIC_READ"
    assert info.is_public


def test_submit_strategy_posts_the_whole_request_to_the_internal_listener(schema: Schema) -> None:
    rpc = method(schema, "qmtl.gateway.v1.GatewayService.SubmitStrategy")
    rule = http_rule(schema.pool, rpc)
    assert rule is not None
    assert rule.bindings == (HttpBinding("POST", "/v1/gateway/internal/strategies", body="*"),)
    info = require_access(schema.pool, rpc)
    assert (info.access, info.exposure, info.scopes) == (
        "ACCESS_INTERNAL",
        "INTERNAL",
        ("strategies:submit",),
    )
    assert not info.is_public


@pytest.mark.parametrize(
    "name",
    ["qmtl.gateway.v1.GatewayService.GetHealth", "qmtl.dagmanager.v1.DagManagerService.GetStatus"],
)
def test_health_probes_allow_anonymous_callers(schema: Schema, name: str) -> None:
    info = require_access(schema.pool, method(schema, name))
    assert info == AccessInfo("ACCESS_PUBLIC_READ", (), allow_anonymous=True)


def test_every_rpc_follows_the_access_contract(schema: Schema) -> None:
    # access.proto: public reads are always GET; internal methods (writes as POST, reads as
    # GET) live under /internal/.
    problems: list[str] = []
    methods = [m for service in schema.services() for m in service.methods]
    assert len(methods) >= 20
    for rpc in methods:
        info = require_access(schema.pool, rpc)
        rule = http_rule(schema.pool, rpc)
        if rule is None:
            problems.append(f"{rpc.full_name}: no google.api.http")
            continue
        for binding in rule.bindings:
            if info.is_public and binding.method != "GET":
                problems.append(f"{rpc.full_name}: {info.exposure} served as {binding.method}")
            if info.is_public == ("/internal/" in binding.path):
                problems.append(f"{rpc.full_name}: {info.exposure} at {binding.path}")
            for name in parse(binding.path, rpc.full_name).fields:
                if name not in rpc.input_type.fields_by_name:
                    problems.append(f"{rpc.full_name}: path binds unknown field {name}")
    assert not problems


def test_path_parameters_are_required_fields(schema: Schema) -> None:
    rpc = method(schema, "qmtl.dagmanager.v1.DagManagerService.GetNode")
    rule = http_rule(schema.pool, rpc)
    assert rule is not None
    assert parse(rule.primary.path, rpc.full_name).fields == ("node_id",)
    node_id = rpc.input_type.fields_by_name["node_id"]
    assert field_behaviors(schema.pool, node_id) == ("REQUIRED",)


def test_error_codes_carry_the_wire_code_named_after_the_value(schema: Schema) -> None:
    error_code = schema.pool.FindEnumTypeByName("qmtl.common.v1.ErrorCode")
    for value in error_code.values:
        info = error_info(schema.pool, value)
        if value.number == 0:
            assert info is None
            continue
        assert info is not None, value.name
        assert info.code == "E_" + value.name.removeprefix("ERROR_CODE_")
        assert 400 <= info.http_status < 600
        assert not info.retryable or info.http_status >= 500, value.name
    timeout = error_code.values_by_name["ERROR_CODE_TIMEOUT"]
    assert error_info(schema.pool, timeout) == ErrorInfo("E_TIMEOUT", 504, retryable=True)


def test_elements_without_the_option_read_as_unset(schema: Schema) -> None:
    edge = schema.pool.FindMessageTypeByName("qmtl.dag.v1.Edge")
    assert field_behaviors(schema.pool, edge.fields_by_name["source"]) == ()
    rpc = method(schema, "qmtl.gateway.v1.GatewayService.GetHealth")
    assert extension_value(schema.pool, rpc, "qmtl.api.v1.no_such_option") is None


def test_an_extension_of_another_options_type_is_refused(schema: Schema) -> None:
    # The field has options (field_behavior), so the mix-up cannot go unnoticed.
    request = schema.pool.FindMessageTypeByName("qmtl.dagmanager.v1.GetNodeRequest")
    with pytest.raises(GeneratorError, match="MethodOptions"):
        extension_value(schema.pool, request.fields_by_name["node_id"], ACCESS_RULE)


def probe_file(schema: Schema, **access: Any) -> descriptor_pb2.FileDescriptorProto:
    """A file with one rpc whose access option has `access` set (no option if empty)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="probe/v1/probe.proto",
        package="probe.v1",
        syntax="proto3",
        dependency=["qmtl/api/v1/access.proto"],
    )
    file.message_type.add(name="Probe")
    rpc = file.service.add(name="ProbeService").method.add(
        name="Probe", input_type=".probe.v1.Probe", output_type=".probe.v1.Probe"
    )
    if access:
        options_type = schema.pool.FindMessageTypeByName("google.protobuf.MethodOptions")
        options = message_factory.GetMessageClass(options_type)()
        rule = options.Extensions[schema.pool.FindExtensionByName(ACCESS_RULE)]
        for key, value in access.items():
            if isinstance(value, list):
                getattr(rule, key).extend(value)
            else:
                setattr(rule, key, value)
        rpc.options.MergeFromString(options.SerializeToString())
    return file


def probe_method(schema: Schema) -> descriptor.MethodDescriptor:
    return method(schema, "probe.v1.ProbeService.Probe")


@pytest.mark.parametrize(
    ("access", "message"),
    [
        ({}, "is required"),
        ({"required_scopes": ["x:read"]}, "is required"),
        ({"access": 2, "allow_anonymous": True}, "allow_anonymous"),
        ({"access": 7}, "unknown access class 7"),
    ],
    ids=["no-option", "unspecified", "anonymous-internal", "unknown-class"],
)
def test_require_access_rejects_what_access_proto_forbids(
    schema: Schema, schema_with: MakeSchema, access: dict[str, Any], message: str
) -> None:
    probe = schema_with([probe_file(schema, **access)])
    with pytest.raises(GeneratorError, match=message):
        require_access(probe.pool, probe_method(probe))


def test_an_rpc_without_options_has_no_http_rule(schema: Schema, schema_with: MakeSchema) -> None:
    probe = schema_with([probe_file(schema)])
    assert http_rule(probe.pool, probe_method(probe)) is None
    assert access_rule(probe.pool, probe_method(probe)) is None
