"""The client engine lays a request out as the routers read it, and reads any error answer."""

from __future__ import annotations

import httpx
import pytest

from qmtl.common.v1 import match_mode_pb2
from qmtl.common.v1.error_pb2 import ErrorDetail
from qmtl.dagmanager.v1.node_messages_pb2 import GetNodeRequest, ListNodesRequest
from qmtl.gateway.v1.strategy_messages_pb2 import GetStrategyResponse
from qmtl.runtime import contracts_version
from qmtl.runtime.codec import Encoding
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.http.client import Operation, Var, build_path, finish, prepare, query_pairs

GET_STRATEGY: Operation[GetNodeRequest, GetStrategyResponse] = Operation(
    name="t.Get",
    method="GET",
    path=("/v1/x/", Var("node_id")),
    body="",
    response=GetStrategyResponse,
    internal=False,
)


def test_path_variables_are_filled_and_escaped_except_colons() -> None:
    path, bound = build_path(("/v1/nodes/", Var("node_id")), GetNodeRequest(node_id="blake3:a?b c"))

    assert path == "/v1/nodes/blake3:a%3Fb%20c"
    assert bound == {"node_id"}


def test_empty_path_value_is_refused_before_sending() -> None:
    with pytest.raises(QmtlError, match="node_id"):
        build_path(("/v1/nodes/", Var("node_id")), GetNodeRequest())


def test_query_carries_set_fields_by_json_name_with_dots_and_repeats() -> None:
    request = ListNodesRequest(
        tags=["a", "b"], interval=2**60, match_mode=match_mode_pb2.MATCH_MODE_ALL, node_type="T"
    )
    request.page.page_size = 10

    assert query_pairs(request, set()) == [
        ("page.pageSize", "10"),
        ("tags", "a"),
        ("tags", "b"),
        ("matchMode", "MATCH_MODE_ALL"),
        ("interval", str(2**60)),
        ("nodeType", "T"),
    ]
    assert query_pairs(request, {"node_type", "page.page_size"})[-1] == ("interval", str(2**60))


def test_prepared_request_names_its_encoding_and_bearer() -> None:
    prepared = prepare(GET_STRATEGY, GetNodeRequest(node_id="n"), Encoding.JSON, lambda: "tok")

    assert prepared.path == "/v1/x/n"
    assert prepared.headers == {
        "Accept": "application/json",
        "Authorization": "Bearer tok",
        "qmtl-contracts-version": contracts_version.SPOKEN,
    }
    assert prepared.content is None


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (404, b"<html>nope</html>", "E_NOT_FOUND"),
        (502, b"bad gateway", "E_INTERNAL"),
        (418, b"", "E_VALIDATION"),
    ],
)
def test_error_answer_without_an_error_detail_still_raises_the_client_error(
    status: int, body: bytes, code: str
) -> None:
    response = httpx.Response(status, content=body, headers={"content-type": "text/html"})

    with pytest.raises(QmtlError) as raised:
        finish(GET_STRATEGY, response, Encoding.PROTOBUF)

    assert (raised.value.status, raised.value.wire_code) == (status, code)
    assert f"HTTP {status}" in raised.value.message


def test_error_detail_is_decoded_in_the_answers_encoding() -> None:
    detail = ErrorDetail(code="E_DUPLICATE", message="seen", retryable=False)
    response = httpx.Response(
        409, content=detail.SerializeToString(), headers={"content-type": "application/x-protobuf"}
    )

    with pytest.raises(QmtlError) as raised:
        finish(GET_STRATEGY, response, Encoding.JSON)

    assert raised.value.detail == detail


def test_success_body_that_does_not_decode_is_a_client_error() -> None:
    response = httpx.Response(
        200, content=b"\xff\xff", headers={"content-type": "application/x-protobuf"}
    )

    with pytest.raises(QmtlError) as raised:
        finish(GET_STRATEGY, response, Encoding.PROTOBUF)

    assert raised.value.wire_code == "E_MALFORMED_BODY"
