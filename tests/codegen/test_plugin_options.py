"""Every plugin reads its `opt` string into a typed, frozen dataclass, refusing unknown keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pytest
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import golden, json_schema, openapi, package, protoc_bridge, reference
from qmtl_codegen.openapiv2_bridge import prepare
from qmtl_codegen.plugin import GeneratorError, NoOptions, parse_options


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    quiet: bool = False
    retries: int = 3
    tag: tuple[str, ...] = ()
    note: str | None = None


def test_options_are_typed() -> None:
    parsed = parse_options("probe", "name=x, quiet ,retries=5,tag=a,tag=b,note=", Probe)
    assert parsed == Probe(name="x", quiet=True, retries=5, tag=("a", "b"), note="")


def test_defaults_fill_what_is_not_given() -> None:
    assert parse_options("probe", "name=x", Probe) == Probe(name="x")


@pytest.mark.parametrize(("flag", "value"), [("true", True), ("0", False), ("False", False)])
def test_a_flag_takes_an_explicit_value(flag: str, value: bool) -> None:
    assert parse_options("probe", f"name=x,quiet={flag}", Probe).quiet is value


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ("name=x,colour=red", "probe: unknown option 'colour' (valid options: name, quiet, "),
        ("", "probe: option 'name' is required"),
        ("name=x,retries=many", "probe: option 'retries' needs an integer, not 'many'"),
        ("name=x,quiet=maybe", "probe: option 'quiet' is a flag; 'maybe' is not true or false"),
        ("name", "probe: option 'name' needs a value (name=...)"),
        ("name=x,name=y", "probe: option 'name' is given twice"),
    ],
)
def test_bad_options_name_the_plugin_and_valid_keys(parameter: str, message: str) -> None:
    with pytest.raises(GeneratorError) as raised:
        parse_options("probe", parameter, Probe)
    assert message in str(raised.value)


def test_a_plugin_without_options_refuses_any() -> None:
    with pytest.raises(GeneratorError) as raised:
        parse_options("reference", "x=1", NoOptions)
    assert str(raised.value) == "reference: unknown option 'x' (valid options: none)"


@pytest.mark.parametrize(
    ("generate", "parameter", "plugin"),
    [
        (golden.generate, "exisitng=tests/golden/fixtures", "golden"),
        (json_schema.generate, "idbase=x", "json_schema"),
        (openapi.generate, "verison=1", "openapi"),
        (package.generate, "nmae=x", "package"),
        (reference.generate, "layout=docs", "reference"),
        (protoc_bridge.generate, "lang=python,services_only=perhaps", "protoc_bridge"),
    ],
)
def test_every_plugin_refuses_a_misspelt_option(
    generate: Callable[[plugin_pb2.CodeGeneratorRequest], Iterable[object]],
    parameter: str,
    plugin: str,
) -> None:
    request = plugin_pb2.CodeGeneratorRequest(parameter=parameter)
    with pytest.raises(GeneratorError, match=f"^{plugin}: "):
        list(generate(request))


def test_bridges_hand_on_the_options_they_do_not_declare() -> None:
    request = plugin_pb2.CodeGeneratorRequest(
        parameter="plugin=.tools/bin/protoc-gen-openapiv2,allow_merge=false,json_names_for_fields"
    )
    plugin, _ = prepare(request)
    assert plugin == ".tools/bin/protoc-gen-openapiv2"
    assert request.parameter == "allow_merge=false,json_names_for_fields"
