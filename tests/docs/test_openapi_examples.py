"""Examples, curl samples and descriptions of the OpenAPI operations, as the docs site shows them.

Every request body and success response has a JSON example taken from a golden fixture (the
file its summary names exists and holds the example, less the fields the listener leaves out),
the example is valid against the operation's own schema, JSON is listed before protobuf, each
operation has one curl sample that sends a token exactly when the operation needs one, and no
description repeats its summary.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from google.protobuf.compiler import plugin_pb2
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator

from tests.codegen.conftest import ROOT
from tests.docs.openapi_support import Document, documents, operations

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
FIXTURE = re.compile(r"^Golden fixture (tests/golden/fixtures/[^ ,]+\.json)")


@pytest.fixture(scope="module")
def docs(codegen_request: plugin_pb2.CodeGeneratorRequest) -> dict[str, Document]:
    return documents(codegen_request, "version=0.1.0")


def validate(document: Document, schema: dict[str, Any], value: Any) -> list[str]:
    root = {**schema, "components": document["components"]}
    return [e.message for e in Draft202012Validator(root).iter_errors(value)]


def contained(part: Any, whole: Any) -> bool:
    """Whether `part` is `whole` with some object keys left out."""
    if isinstance(part, dict) and isinstance(whole, dict):
        return all(k in whole and contained(v, whole[k]) for k, v in part.items())
    if isinstance(part, list) and isinstance(whole, list):
        if len(part) != len(whole):
            return False
        return all(contained(p, w) for p, w in zip(part, whole, strict=True))
    return bool(part == whole)


def check_example(document: Document, where: str, content: Document) -> list[str]:
    problems = []
    if list(content)[:2] != [JSON, PROTOBUF]:
        problems.append(f"{where}: content order {list(content)}, JSON must come first")
    examples = content[JSON].get("examples", {})
    if list(examples) != ["fixture"]:
        return [*problems, f"{where}: examples {list(examples)}"]
    example = examples["fixture"]
    match = FIXTURE.match(example["summary"])
    if match is None:
        return [*problems, f"{where}: summary names no fixture: {example['summary']}"]
    fixture = ROOT / match.group(1)
    if not fixture.is_file():
        problems.append(f"{where}: {match.group(1)} does not exist (run make generate)")
    elif not contained(example["value"], json.loads(fixture.read_text())):
        problems.append(f"{where}: the example is not {match.group(1)}")
    problems += [
        f"{where}: {e}" for e in validate(document, content[JSON]["schema"], example["value"])
    ]
    return problems


def test_documents_stay_valid_openapi(docs: dict[str, Document]) -> None:
    for name, document in docs.items():
        errors = [e.message for e in OpenAPIV31SpecValidator(document).iter_errors()]
        assert not errors, f"{name}: {errors[:3]}"


def test_every_body_and_success_response_has_a_valid_fixture_example(
    docs: dict[str, Document],
) -> None:
    problems = []
    bodies = 0
    for name, document in docs.items():
        for verb, path, operation in operations(document):
            where = f"{name} {verb.upper()} {path}"
            if "requestBody" in operation:
                bodies += 1
                problems += check_example(
                    document, f"{where} request", operation["requestBody"]["content"]
                )
            ok = operation["responses"]["200"]["content"]
            problems += check_example(document, f"{where} 200", ok)
    assert bodies >= 6, bodies
    assert not problems, "\n".join(problems)


def test_public_examples_leave_out_internal_only_fields(docs: dict[str, Document]) -> None:
    public = docs["gateway.public.openapi.json"]["paths"]["/v1/gateway/health"]["get"]
    value = public["responses"]["200"]["content"][JSON]["examples"]["fixture"]["value"]
    assert set(value["health"]) <= {"service", "state", "ready"}, value
    internal = docs["gateway.internal.openapi.json"]["paths"]["/v1/gateway/internal/health"]
    detail = internal["get"]["responses"]["200"]["content"][JSON]["examples"]["fixture"]["value"]
    assert "components" in detail["health"], "the internal view keeps every field"


def test_path_fields_are_left_out_of_a_whole_request_body(docs: dict[str, Document]) -> None:
    retry = docs["gateway.internal.openapi.json"]["paths"][
        "/v1/gateway/internal/strategies/{strategy_id}/retry"
    ]["post"]
    example = retry["requestBody"]["content"][JSON]["examples"]["fixture"]
    assert "strategyId" not in example["value"]
    assert "without the path fields strategy_id" in example["summary"]
    (sample,) = retry["x-codeSamples"]
    assert (
        '"$QMTL_INTERNAL_URL/v1/gateway/internal/strategies/strategy_id-1/retry"'
        in (sample["source"])
    )


def test_every_operation_has_a_curl_sample(docs: dict[str, Document]) -> None:
    problems = []
    for name, document in docs.items():
        for verb, path, operation in operations(document):
            where = f"{name} {verb.upper()} {path}"
            samples = operation.get("x-codeSamples", [])
            if [(s["lang"], s["label"]) for s in samples] != [("Shell", "curl")]:
                problems.append(f"{where}: samples {samples}")
                continue
            source = samples[0]["source"]
            url = re.search(r'-X (\w+) "(\$QMTL_(PUBLIC|INTERNAL)_URL)(/[^"]*)"', source)
            if url is None:
                problems.append(f"{where}: no URL in {source!r}")
                continue
            public = operation["x-qmtl-access"] == "PUBLIC_READ"
            if (url.group(1), url.group(3) == "PUBLIC") != (verb.upper(), public):
                problems.append(f"{where}: {url.group(0)}")
            if "{" in url.group(4) or "://" in source:
                problems.append(f"{where}: unfilled or absolute URL {url.group(0)}")
            token = 'Authorization: Bearer $QMTL_TOKEN"' in source
            if token != ("security" in operation):
                problems.append(f"{where}: Authorization header {token}")
            if "requestBody" in operation:
                body = source.split("<<'JSON'\n", 1)[-1].rsplit("\nJSON", 1)[0]
                example = operation["requestBody"]["content"][JSON]["examples"]["fixture"]
                if json.loads(body) != example["value"]:
                    problems.append(f"{where}: the curl body is not the example")
    assert not problems, "\n".join(problems)


def test_internal_curl_samples_send_a_token(docs: dict[str, Document]) -> None:
    for name in ("gateway.internal.openapi.json", "dagmanager.internal.openapi.json"):
        for _, _, operation in operations(docs[name]):
            assert "Authorization: Bearer $QMTL_TOKEN" in operation["x-codeSamples"][0]["source"]
    health = docs["gateway.public.openapi.json"]["paths"]["/v1/gateway/health"]["get"]
    assert "Authorization" not in health["x-codeSamples"][0]["source"], "anonymous read"


def test_queues_by_tag_curl_carries_the_required_interval(docs: dict[str, Document]) -> None:
    operation = docs["gateway.public.openapi.json"]["paths"]["/v1/gateway/queues/by-tag"]["get"]
    source = operation["x-codeSamples"][0]["source"]
    assert '"$QMTL_PUBLIC_URL/v1/gateway/queues/by-tag?interval=' in source
    assert "tags=" not in source, "only REQUIRED query parameters are filled in"


def test_no_description_repeats_its_summary(docs: dict[str, Document]) -> None:
    repeats = []
    for name, document in docs.items():
        for verb, path, operation in operations(document):
            summary = " ".join(operation["summary"].split())
            description = " ".join(operation.get("description", "").split())
            if summary and description.startswith(summary):
                repeats.append(f"{name} {verb.upper()} {path}")
    assert not repeats, repeats
    submit = docs["gateway.internal.openapi.json"]["paths"]["/v1/gateway/internal/strategies"]
    assert submit["post"]["description"].startswith("Validation: schema_version")


def test_sixty_four_bit_fields_take_what_the_server_parses(docs: dict[str, Document]) -> None:
    """Decimal strings and, as json_format also reads them, JSON integers in range.

    The fixture examples lead schemathesis deep into bodies, where a document that refused
    `"interval": 0` while the server took it was a disagreement (the internal rejection test).
    """
    document = docs["dagmanager.internal.openapi.json"]
    interval = {"$ref": "#/components/schemas/qmtl.dag.v1.TagQuery/properties/interval"}
    for good in ("60", 60, 0, 2**63 - 1, -(2**63), None):
        assert not validate(document, interval, good), good
    for bad in (2**63, "1e3", 1.5, "0x10"):
        assert validate(document, interval, bad), bad
