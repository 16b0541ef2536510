"""Property-based: each generated internal app honours the internal OpenAPI document it serves.

The internal listener carries the writes (submissions, diffs, retries, GC) and the detailed
health, every operation behind a token. schemathesis reads the document from the internal
app's own /openapi.json and, with a token holding every scope, generates valid and invalid
requests for each operation: no 5xx, and every status, header, content type and JSON body one
the document declares. Like the public conformance test (test_openapi_conformance.py), the
handler answers golden fixtures, so a sequence of calls has no state to carry between them:
the documents declare no OpenAPI links and a stateful run would only repeat these calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.generation.case import Case
from schemathesis.schemas import BaseSchema

from tests.http.conftest import build_apps
from tests.http.surface import INTERNAL, OPERATIONS, SERVICES, token

ALL_SCOPES = sorted({scope for op in OPERATIONS for scope in op.scopes})
HEADERS = {"Authorization": f"Bearer {token(*ALL_SCOPES)}", "Accept": "application/json"}
MAX_EXAMPLES = 40

# As in the public test: the documents write 64-bit integers as decimal strings with a
# `format`; taught the formats, schemathesis calls a value valid exactly when the server does.
schemathesis.openapi.format("int64", st.integers(-(2**63), 2**63 - 1).map(str))
schemathesis.openapi.format("uint64", st.integers(0, 2**64 - 1).map(str))


def _schema(service_name: str) -> BaseSchema:
    first = next(op for op in INTERNAL if op.service.full_name == service_name)
    return schemathesis.openapi.from_asgi("/openapi.json", build_apps(first).internal)


_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def internal_conformance_test(service_name: str) -> Callable[..., None]:
    """No 5xx, valid requests accepted, and every answer as the document declares it."""

    @_schema(service_name).parametrize()
    @_SETTINGS
    def test(case: Case[Any]) -> None:
        case.call_and_validate(headers=HEADERS, excluded_checks=[checks.negative_data_rejection])

    wrapped: Callable[..., None] = test
    return wrapped


def internal_rejection_test(service_name: str) -> Callable[..., None]:
    """Every body or parameter the document calls invalid is refused with a 4xx.

    Apart from the public test, which leaves it out (a query string cannot always show it):
    internal operations take bodies, where the document states every constraint the server
    must enforce, so a request it calls invalid and the server accepts is a disagreement.
    """

    @_schema(service_name).parametrize()
    @_SETTINGS
    def test(case: Case[Any]) -> None:
        case.call_and_validate(headers=HEADERS, checks=[checks.negative_data_rejection])

    wrapped: Callable[..., None] = test
    return wrapped


for _service in SERVICES:
    if any(op.service is _service for op in INTERNAL):
        _name = _service.name
        globals()[f"test_{_name}_internal_app_conforms_to_its_openapi_document"] = (
            internal_conformance_test(_service.full_name)
        )
        globals()[f"test_{_name}_internal_app_refuses_what_its_document_calls_invalid"] = (
            internal_rejection_test(_service.full_name)
        )
