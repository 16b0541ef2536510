"""Every golden JSON fixture is valid under its message's generated JSON Schema.

The fixtures are protobuf's own JSON output (json_format), so this checks the generated schemas
against the real mapping. A second, closed-world pass forbids properties the schema does not
declare: the published schemas stay open for compatibility, which alone would let a wrong
field name go unnoticed. Wrong values must fail.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.compiler import plugin_pb2
from jsonschema import Draft202012Validator

from qmtl_codegen.descriptors import Schema
from qmtl_codegen.json_schema import DIALECT, SUFFIX, generate
from tests.codegen.conftest import ROOT

FIXTURES = ROOT / "tests" / "golden" / "fixtures"
FIXTURE_FILES = sorted(FIXTURES.glob("*/*.json"))


@pytest.fixture(scope="module")
def documents(codegen_request: plugin_pb2.CodeGeneratorRequest) -> dict[str, dict[str, Any]]:
    """Message full name -> its JSON Schema document, generated in-process."""
    found = {}
    for output in generate(codegen_request):
        assert isinstance(output.content, str)
        found[output.name.removesuffix(SUFFIX)] = json.loads(output.content)
    return found


def validator(document: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(document, format_checker=Draft202012Validator.FORMAT_CHECKER)


def closed(node: Any) -> Any:
    """A copy where every object schema with properties allows no others."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: closed(value) for key, value in node.items()}
    if "properties" in result and "additionalProperties" not in result:
        result["additionalProperties"] = False
    return result


def test_there_are_fixtures_to_check() -> None:
    assert len(FIXTURE_FILES) > 50


def test_every_message_has_a_valid_schema_document(
    schema: Schema, documents: dict[str, dict[str, Any]]
) -> None:
    assert set(documents) == {desc.full_name for desc in schema.messages()}
    for name, document in documents.items():
        Draft202012Validator.check_schema(document)
        assert document["$schema"] == DIALECT
        assert document["$id"] == f"https://qmtl.dev/schemas/{name}.schema.json"
        assert document["title"] == name
        assert document["$comment"].endswith("DO NOT EDIT.")


def test_documents_are_self_contained(documents: dict[str, dict[str, Any]]) -> None:
    for name, document in documents.items():
        text = json.dumps(document)
        refs = {part.split('"', 1)[0] for part in text.split('"$ref": "')[1:]}
        for ref in refs:
            assert ref == "#" or ref.removeprefix("#/$defs/") in document.get("$defs", {}), (
                f"{name}: dangling {ref}"
            )


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_fixture_validates(path: Path, documents: dict[str, dict[str, Any]]) -> None:
    document = documents[path.parent.name]
    instance = json.loads(path.read_text())
    validator(document).validate(instance)
    validator(closed(document)).validate(instance)


def load_fixture(name: str, variant: str = "full") -> dict[str, Any]:
    (path,) = sorted((FIXTURES / name).glob(f"{variant}-*.json"))[:1]
    found: dict[str, Any] = json.loads(path.read_text())
    return found


def errors(documents: dict[str, dict[str, Any]], name: str, instance: Any) -> list[str]:
    return [error.message for error in validator(documents[name]).iter_errors(instance)]


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        # JSON numbers beyond 2**53 lose precision: 64-bit integers must be strings.
        ("qmtl.dag.v1.QueueDescriptor", {"interval": 2**53 + 1}, "is not of type 'string'"),
        ("qmtl.dag.v1.TagQuery", {"matchMode": "MATCH_MODE_SOME"}, "is not one of"),
        ("qmtl.dag.v1.TagQuery", {"matchMode": 2}, "is not of type 'string'"),
        ("qmtl.dag.v1.Queue", {"retention": "PT1.5S"}, "does not match"),
        ("qmtl.dag.v1.Queue", {"createdAt": "2026-01-02 03:04"}, "is not a 'date-time'"),
        ("qmtl.dag.v1.Queue", {"global": "yes"}, "is not of type 'boolean'"),
        ("qmtl.work.v1.WorkItem", {"payload": "not base64!"}, "does not match"),
        ("qmtl.dagmanager.v1.DiffRequest", {"nodeIdsCrc32": -1}, "is less than the minimum"),
        ("qmtl.dag.v1.QueueMap", {"queues": {"n1": {"interval": 60}}}, "is not of type"),
        ("qmtl.gateway.v1.GetQueuesByTagRequest", {"interval": None}, "is not of type"),
    ],
)
def test_wrong_values_fail(
    documents: dict[str, dict[str, Any]], name: str, change: dict[str, Any], expected: str
) -> None:
    instance = {**load_fixture(name), **change}
    assert any(expected in message for message in errors(documents, name, instance))


def test_a_missing_required_field_fails(documents: dict[str, dict[str, Any]]) -> None:
    instance = load_fixture("qmtl.gateway.v1.GetQueuesByTagRequest")
    del instance["interval"]
    assert errors(documents, "qmtl.gateway.v1.GetQueuesByTagRequest", instance) == [
        "'interval' is a required property"
    ]


def test_two_members_of_a_oneof_fail(documents: dict[str, dict[str, Any]]) -> None:
    event = load_fixture("qmtl.events.v1.Event")
    other = load_fixture("qmtl.events.v1.Event", "payload-queue_updated")
    assert "nodeStatusChanged" in event
    assert not errors(documents, "qmtl.events.v1.Event", other)
    both = {**event, "queueUpdated": other["queueUpdated"]}
    assert errors(documents, "qmtl.events.v1.Event", both)
    neither = {k: v for k, v in event.items() if k != "nodeStatusChanged"}
    assert not errors(documents, "qmtl.events.v1.Event", neither)


def test_a_wrong_field_name_fails_only_in_the_closed_world(
    documents: dict[str, dict[str, Any]],
) -> None:
    document = documents["qmtl.dag.v1.QueueDescriptor"]
    instance = {**load_fixture("qmtl.dag.v1.QueueDescriptor"), "isGlobal": True}
    assert validator(document).is_valid(instance), "open for newer fields"
    assert not validator(closed(document)).is_valid(instance)


def test_generation_is_deterministic(codegen_request: plugin_pb2.CodeGeneratorRequest) -> None:
    shuffled = copy.deepcopy(codegen_request)
    shuffled.ClearField("file_to_generate")
    shuffled.file_to_generate.extend(reversed(codegen_request.file_to_generate))
    first, second = list(generate(codegen_request)), list(generate(shuffled))
    assert first == second
    assert all(isinstance(f.content, str) and f.content.endswith("}\n") for f in first)


def test_committed_schemas_are_current(documents: dict[str, dict[str, Any]]) -> None:
    committed = ROOT / "generated" / "jsonschema"
    on_disk = {p.name.removesuffix(SUFFIX): json.loads(p.read_text()) for p in committed.iterdir()}
    assert on_disk == documents, "run `make generate`"
