"""The OpenAPI documents list exactly the routes and parameters the generated routers serve.

The routers are generated from qmtl_codegen.httpmodel, the documents from
qmtl_codegen.openapi_operations; both read the same options, and this keeps their leaf-field
rules from drifting apart.
"""

from __future__ import annotations

import json
import re
from typing import Any

from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import httpmodel
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.openapi import generate


def test_routes_and_parameters_agree(
    schema: Schema, codegen_request: plugin_pb2.CodeGeneratorRequest
) -> None:
    documented: dict[str, tuple[str, str, list[str]]] = {}
    for output in generate(codegen_request):
        assert isinstance(output.content, str)
        document: dict[str, Any] = json.loads(output.content)
        for path, item in document["paths"].items():
            for verb, operation in item.items():
                names = [p["name"] for p in operation.get("parameters", [])]
                documented[operation["operationId"]] = (verb.upper(), path, names)
    served: dict[str, tuple[str, str, list[str]]] = {}
    for file in httpmodel.file_models(schema):
        for service in file.services:
            for rpc in service.rpcs:
                for index, route in enumerate(rpc.routes):
                    suffix = f"_{index}" if index else ""
                    names = [".".join(p.path) for p in route.path_params]
                    names += [p.names[0] for p in route.query_params]
                    # OpenAPI paths drop the `=pattern` of a variable.
                    path = re.sub(r"\{([^{}=]+)=[^{}]*\}", r"{\1}", route.template)
                    served[f"{service.name}_{rpc.name}{suffix}"] = (route.verb, path, names)
    assert documented == served
