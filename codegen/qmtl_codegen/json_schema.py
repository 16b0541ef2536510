"""JSON Schema (draft 2020-12) of every message, one self-contained file each.

    <full.message.Name>.schema.json

The root is the message's own schema; every message and enum it reaches is under `$defs`
keyed by full name, so a file validates alone (a self-reference is `#`). The mapping is the
one the OpenAPI documents use (qmtl_codegen.jsonmapping). Run with `strategy: all`, so every
message of the schemas gets a file and no per-message configuration exists.

    opt: [id_base=https://qmtl.dev/schemas/]   # $id prefix; the file name is appended
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf import descriptor
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen.descriptors import Schema
from qmtl_codegen.jsonmapping import JsonMapping, JsonObject, dump, named_types
from qmtl_codegen.plugin import OutputFile, header_line, parse_options, run

DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_ID_BASE = "https://qmtl.dev/schemas/"
SUFFIX = ".schema.json"


def message_schema(schema: Schema, desc: descriptor.Descriptor, id_base: str) -> JsonObject:
    """The self-contained JSON Schema document of one message."""
    root = desc.full_name
    mapping = JsonMapping(schema, lambda name: "#" if name == root else f"#/$defs/{name}")
    document: JsonObject = {
        "$schema": DIALECT,
        "$id": f"{id_base}{root}{SUFFIX}",
        "$comment": header_line("jsonschema", desc.file.name),
        "title": root,
        **mapping.message(desc),
    }
    defs = {
        name: mapping.definition(named)
        for name, named in named_types([desc]).items()
        if name != root
    }
    if defs:
        document["$defs"] = defs
    return document


@dataclass(frozen=True, slots=True)
class JsonSchemaOptions:
    id_base: str = DEFAULT_ID_BASE


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    id_base = parse_options("json_schema", request.parameter, JsonSchemaOptions).id_base
    id_base = id_base or DEFAULT_ID_BASE
    schema = Schema.from_request(request)
    for desc in sorted(schema.messages(), key=lambda d: d.full_name):
        yield OutputFile(f"{desc.full_name}{SUFFIX}", dump(message_schema(schema, desc, id_base)))


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
