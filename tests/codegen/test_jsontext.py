"""qmtl_codegen.jsontext writes the bytes json.dumps(indent=2, ensure_ascii=False) writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import json_schema, openapi
from qmtl_codegen.jsontext import dump


def standard(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize(
    "document",
    [
        {},
        [],
        {"empty": {}, "list": [], "nested": [{"a": [1, 2, {}]}]},
        {"text": 'Ünïcødé \u2028 \x01 \x7f "quoted" back\\slash', "é": "key"},
        {"ints": [0, -1, 2**53 + 1, -(2**63), 2**64 - 1], "bools": [True, False, None]},
        {"floats": [0.0, -0.0, 0.5, 1.5, 5368709110.5, 0.30000000000000004, 1e15, 0.0001]},
        {"past 64 bits": 2**70},  # orjson refuses it: the standard library writes it
        ("a", ("tuple",)),
    ],
)
def test_dump_writes_the_standard_librarys_text(document: Any) -> None:
    assert dump(document) == standard(document)


def test_every_generated_document_is_the_standard_librarys_text(
    codegen_request: plugin_pb2.CodeGeneratorRequest,
) -> None:
    request = plugin_pb2.CodeGeneratorRequest()
    request.CopyFrom(codegen_request)
    request.parameter = "version=1.0.0"
    outputs = [*openapi.generate(request)]
    request.parameter = ""
    outputs += json_schema.generate(request)
    assert len(outputs) > 50
    for output in outputs:
        assert isinstance(output.content, str)
        assert output.content == standard(json.loads(output.content)), output.name


def test_the_committed_swagger_documents_are_the_standard_librarys_text() -> None:
    swagger = sorted((Path(__file__).resolve().parents[2] / "docs/openapi/swagger").rglob("*.json"))
    assert swagger
    for path in swagger:
        text = path.read_text()
        assert dump(json.loads(text)) == text, path
