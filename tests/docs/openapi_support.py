"""Generates the OpenAPI documents in-process for the docs tests."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from google.protobuf.compiler import plugin_pb2

from qmtl_codegen.openapi import generate

Document = dict[str, Any]
VERBS = ("get", "put", "post", "delete", "patch")


def documents(request: plugin_pb2.CodeGeneratorRequest, parameter: str = "") -> dict[str, Document]:
    request = copy.deepcopy(request)
    request.parameter = parameter
    found = {}
    for output in generate(request):
        assert isinstance(output.content, str)
        found[output.name] = json.loads(output.content)
    return found


def operations(document: Document) -> Iterator[tuple[str, str, Document]]:
    """(verb, path, operation) of every operation of a document."""
    for path, item in document["paths"].items():
        for verb in VERBS:
            if verb in item:
                yield verb, path, item[verb]
