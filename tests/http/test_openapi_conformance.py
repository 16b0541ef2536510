"""Property-based: each generated public app honours the OpenAPI document it serves.

schemathesis reads the document from the app's own /openapi.json, generates requests for
every operation in it (valid and invalid ones) and checks that no response is a 5xx and that
every status, header, content type and JSON body is one the document declares. The handler
answers with the golden fixtures; requests carry a token holding every scope and ask for JSON
so that bodies are checked against the document's schemas. One test per service, made for
every service the schemas declare.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.generation.case import Case

from tests.http.conftest import build_apps
from tests.http.surface import OPERATIONS, SERVICES, token

ALL_SCOPES = sorted({scope for op in OPERATIONS for scope in op.scopes})
HEADERS = {"Authorization": f"Bearer {token(*ALL_SCOPES)}", "Accept": "application/json"}
# Whether the API rejects every request schemathesis deems invalid is another property, and
# one a query string cannot always show: `types=true` is a valid string to the server.
NOT_ABOUT_CONFORMANCE = [checks.negative_data_rejection]

# The proto3 JSON mapping writes 64-bit integers as decimal strings; the documents say so with
# `format: int64` (or uint64) beside a digits pattern, which cannot state the range. Taught
# the formats, schemathesis calls a value valid exactly when the routers accept it.
schemathesis.openapi.format("int64", st.integers(-(2**63), 2**63 - 1).map(str))
schemathesis.openapi.format("uint64", st.integers(0, 2**64 - 1).map(str))


def conformance_test(service_name: str) -> Callable[..., None]:
    first = next(op for op in OPERATIONS if op.service.full_name == service_name)
    schema = schemathesis.openapi.from_asgi("/openapi.json", build_apps(first).public)

    @schema.parametrize()
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def test(case: Case[Any]) -> None:
        case.call_and_validate(headers=HEADERS, excluded_checks=NOT_ABOUT_CONFORMANCE)

    wrapped: Callable[..., None] = test
    return wrapped


for _service in SERVICES:
    globals()[f"test_{_service.name}_public_app_conforms_to_its_openapi_document"] = (
        conformance_test(_service.full_name)
    )
