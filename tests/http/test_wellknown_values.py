"""Timestamps, Durations and Struct numbers the JSON mapping cannot carry are 400s, not 500s.

Found by the fuzz suite (issue 8 follow-up): `GET /v1/gateway/events?since=...00.3e8558Z`
answered 500 (protobuf's parser raised OverflowError), `since` with a `+99:00` offset was read,
and a binary SubmitStrategy body with a NaN in `meta` or a 20,000-year `waitTimeout` was
accepted, which a handler that serves or reads it turns into a 500. docs/operations/http.md
states the rules.
"""

from __future__ import annotations

import json
import math
from urllib.parse import quote

import httpx
import pytest
from google.protobuf import duration_pb2, struct_pb2

from qmtl.gateway.v1.strategy_messages_pb2 import SubmitStrategyRequest
from qmtl.runtime.http import params as p
from tests.http.conftest import ServiceApps
from tests.http.surface import OPERATIONS, Op, auth_headers, ids, request_fixture

JSON = "application/json"
LIST_EVENTS = next(op for op in OPERATIONS if op.id == "GatewayService.ListEvents")
SUBMIT = next(op for op in OPERATIONS if op.id == "GatewayService.SubmitStrategy")


# -- the query parameter `since` -----------------------------------------------------------

BAD_SINCE = [
    "2026-01-02T03:00:00.3e8558Z",  # was a 500: OverflowError out of Timestamp.FromJsonString
    "2026-01-02T03:00:00.1e400Z",
    "2026-01-02T03:00:00+99:00",  # were read, shifted by the offset
    "2026-01-02T03:00:00+24:00",
    "2026-01-02T03:00:00-12:60",
    "2026-01-02T03:00:00+9:00",
    "2026-01-02T03:00:00.Z",
    "0000-12-31T23:59:59Z",  # the range, as for a JSON body
    "0001-01-01T00:00:00+00:01",
    "10000-01-01T00:00:00Z",
]


@pytest.mark.parametrize("op", [LIST_EVENTS], ids=ids)
@pytest.mark.parametrize("since", BAD_SINCE)
async def test_since_that_is_not_an_rfc_3339_timestamp_in_range_is_400(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient, since: str
) -> None:
    response = await client.get(
        f"{op.path}?since={quote(since)}", headers={**auth_headers(op), "Accept": JSON}
    )

    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "E_INVALID_ARGUMENT"
    assert error["details"] == {"parameter": "since"}
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", [LIST_EVENTS], ids=ids)
@pytest.mark.parametrize(
    ("since", "seconds"),
    [
        ("2026-01-02T03:00:00+23:59", 1767322800 - 86340),
        ("2026-01-02T03:00:00.5-01:00", 1767322800 + 3600),
        ("9999-12-31T23:59:59.999999999Z", 253402300799),
    ],
)
async def test_since_in_rfc_3339_reaches_the_handler(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient, since: str, seconds: int
) -> None:
    response = await client.get(
        f"{op.path}?since={quote(since)}", headers={**auth_headers(op), "Accept": JSON}
    )

    assert response.status_code == 200, response.text
    assert [call.request.since.seconds for call in apps.handler.calls] == [seconds]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "text",
    ["1_0s", " 1s", "1e3s", "+1s", "1.s", ".5s", "0.0000000001s", "315576000001s", "1.5e400s"],
)
def test_duration_parameters_follow_the_mapping_grammar_and_range(text: str) -> None:
    with pytest.raises(p.InvalidValue):
        p.parse_duration(text)


def test_duration_parameters_at_the_edges_are_read() -> None:
    assert p.parse_duration("315576000000.999999999s").nanos == 999_999_999
    assert p.parse_duration("-315576000000s").seconds == -315_576_000_000
    assert p.parse_duration("-0.5s").nanos == -500_000_000


# -- bodies --------------------------------------------------------------------------------


def submit_with(**fields: object) -> SubmitStrategyRequest:
    request = SubmitStrategyRequest.FromString(request_fixture(SUBMIT).SerializeToString())
    for name, value in fields.items():
        getattr(request, name).CopyFrom(value)
    return request


def nan_meta() -> struct_pb2.Struct:
    meta = struct_pb2.Struct()
    meta.update({"owner": "q", "score": [1.0, {"x": math.nan}]})
    return meta


@pytest.mark.parametrize("op", [SUBMIT], ids=ids)
@pytest.mark.parametrize(
    ("request_message", "field"),
    [
        (submit_with(meta=nan_meta()), "meta['score'][1]['x']"),
        (submit_with(wait_timeout=duration_pb2.Duration(seconds=10**12)), "waitTimeout"),
        (submit_with(wait_timeout=duration_pb2.Duration(seconds=1, nanos=-5)), "waitTimeout"),
    ],
    ids=["nan-in-meta", "timeout-beyond-10000-years", "timeout-sign-mismatch"],
)
async def test_binary_body_the_json_mapping_cannot_carry_is_400(
    op: Op,
    apps: ServiceApps,
    client: httpx.AsyncClient,
    request_message: SubmitStrategyRequest,
    field: str,
) -> None:
    response = await client.post(
        op.path,
        content=request_message.SerializeToString(),
        headers={
            **auth_headers(op),
            "Content-Type": "application/x-protobuf",
            "Accept": JSON,
        },
    )

    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "E_MALFORMED_BODY"
    assert f"{field}: " in error["message"]
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", [SUBMIT], ids=ids)
@pytest.mark.parametrize("literal", ["NaN", "-Infinity", "1e999"])
async def test_json_body_with_a_non_finite_number_is_400(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient, literal: str
) -> None:
    body = json.dumps({"dag": {}, "meta": {"a": 0}}).replace("0}", literal + "}")

    response = await client.post(
        op.path,
        content=body.encode(),
        headers={**auth_headers(op), "Content-Type": JSON, "Accept": JSON},
    )

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "E_MALFORMED_BODY"
    assert apps.handler.calls == []
