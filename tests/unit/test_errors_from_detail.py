"""One error type on both sides: QmtlError.from_detail, the gRPC column of the catalogue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from google.protobuf import duration_pb2

from qmtl.common.v1.error_pb2 import ErrorDetail
from qmtl.runtime import error_mapping
from qmtl.runtime.errors import ErrorCode, QmtlError, error_info


def test_a_known_code_round_trips_through_its_detail() -> None:
    sent = QmtlError.unavailable("busy", retry_after=timedelta(seconds=3), queue="q1")
    received = QmtlError.from_detail(sent.to_proto(), status=503)
    assert received.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    assert (received.wire_code, received.status, received.http_status) == (
        "E_UNAVAILABLE",
        503,
        503,
    )
    assert (received.message, received.retryable, received.retry_after) == ("busy", True, 3.0)
    assert received.details == {"queue": "q1"}
    assert received.detail == sent.to_proto()
    assert isinstance(received, Exception)


def test_an_unknown_code_keeps_its_wire_string_and_the_received_detail() -> None:
    detail = ErrorDetail(code="E_FROM_THE_FUTURE", message="new", retryable=True)
    detail.details.update({"n": 1})
    received = QmtlError.from_detail(detail, status=418)
    assert received.code == ErrorCode.ERROR_CODE_UNSPECIFIED
    assert received.error_code == ErrorCode.ERROR_CODE_UNSPECIFIED
    assert (received.wire_code, received.status, received.retryable) == (
        "E_FROM_THE_FUTURE",
        418,
        True,
    )
    assert received.detail is detail
    assert received.details == {"n": 1}
    assert str(received) == "E_FROM_THE_FUTURE (HTTP 418): new"


def test_no_answer_is_status_zero() -> None:
    detail = ErrorDetail(code="E_UNAVAILABLE", message="connection refused", retryable=True)
    received = QmtlError.from_detail(detail, status=0)
    assert received.status == 0
    assert received.http_status == 503  # the catalogue's, for a known code


def test_without_a_status_the_catalogue_status_stands_in() -> None:
    detail = ErrorDetail(code="E_NOT_FOUND", message="gone")
    detail.retry_after.CopyFrom(duration_pb2.Duration(seconds=1, nanos=500_000_000))
    received = QmtlError.from_detail(detail)
    assert (received.status, received.retry_after) == (404, 1.5)


def test_a_server_side_error_reports_its_own_status_and_detail() -> None:
    error = QmtlError.not_found("x", id="1")
    assert error.status == 404
    assert error.detail == error.to_proto()
    assert str(error) == "x"


@pytest.mark.parametrize(
    ("code", "grpc"),
    [
        (ErrorCode.ERROR_CODE_NOT_FOUND, 5),
        (ErrorCode.ERROR_CODE_TIMEOUT, 4),
        (ErrorCode.ERROR_CODE_UNIMPLEMENTED, 12),
        (ErrorCode.ERROR_CODE_UNAUTHENTICATED, 16),
        (ErrorCode.ERROR_CODE_INTERNAL, 13),
    ],
)
def test_the_grpc_status_is_read_from_the_catalogue(code: ErrorCode.ValueType, grpc: int) -> None:
    assert error_info(code).grpc_code == grpc


def test_http_mapping_adds_retry_after_and_a_challenge_on_401() -> None:
    busy = error_mapping.to_http(QmtlError.unavailable("busy", retry_after=2.1), None)
    assert (busy.status, busy.headers) == (503, {"Retry-After": "3"})
    denied = error_mapping.to_http(QmtlError.unauthenticated("no"), "application/json")
    assert denied.status == 401
    assert denied.headers["WWW-Authenticate"].startswith("Bearer")
    assert denied.media_type == "application/json"


def test_http_mapping_hides_anything_but_a_qmtl_error(caplog: pytest.LogCaptureFixture) -> None:
    answer = error_mapping.to_http(RuntimeError("secret detail"), "application/json")
    assert answer.status == 500
    assert b"secret detail" not in answer.body
    assert "secret detail" in caplog.text
