"""The error model takes statuses and wire codes from the schema's catalogue, not from code."""

from __future__ import annotations

from datetime import timedelta

import pytest
from google.protobuf import json_format

from qmtl.common.v1 import error_code_pb2
from qmtl.common.v1.error_pb2 import ErrorDetail
from qmtl.runtime.errors import (
    ErrorCode,
    QmtlError,
    error_info,
    error_info_for_wire,
    known_codes,
)


def test_every_enum_value_but_unspecified_is_in_the_catalogue() -> None:
    names = {info.code for info in known_codes()}
    declared = set(error_code_pb2.ErrorCode.values()) - {ErrorCode.ERROR_CODE_UNSPECIFIED}
    assert names == declared


@pytest.mark.parametrize(
    ("code", "wire", "status", "retryable"),
    [
        (ErrorCode.ERROR_CODE_VALIDATION, "E_VALIDATION", 422, False),
        (ErrorCode.ERROR_CODE_NOT_FOUND, "E_NOT_FOUND", 404, False),
        (ErrorCode.ERROR_CODE_UNAUTHENTICATED, "E_UNAUTHENTICATED", 401, False),
        (ErrorCode.ERROR_CODE_DUPLICATE, "E_DUPLICATE", 409, False),
        (ErrorCode.ERROR_CODE_UNAVAILABLE, "E_UNAVAILABLE", 503, True),
        (ErrorCode.ERROR_CODE_TIMEOUT, "E_TIMEOUT", 504, True),
        (ErrorCode.ERROR_CODE_INTERNAL, "E_INTERNAL", 500, False),
    ],
)
def test_status_code_and_retryability_follow_error_info(
    code: int, wire: str, status: int, retryable: bool
) -> None:
    error = QmtlError(code, "boom")  # type: ignore[arg-type]

    assert (error.wire_code, error.http_status, error.retryable) == (wire, status, retryable)
    assert error_info_for_wire(wire) == error_info(code)  # type: ignore[arg-type]


def test_unspecified_code_is_refused_at_once() -> None:
    with pytest.raises(KeyError):
        QmtlError(ErrorCode.ERROR_CODE_UNSPECIFIED, "no code")


def test_to_proto_carries_code_message_details_and_retry_after() -> None:
    error = QmtlError(
        ErrorCode.ERROR_CODE_QUEUE_CREATE_FAILED,
        "topic creation failed",
        details={"queue": "q-1", "attempts": 3, "nested": {"ok": False}},
        retry_after=timedelta(milliseconds=1500),
    )

    detail = error.to_proto()

    assert json_format.MessageToDict(detail) == {
        "code": "E_QUEUE_CREATE_FAILED",
        "message": "topic creation failed",
        "details": {"queue": "q-1", "attempts": 3.0, "nested": {"ok": False}},
        "retryable": True,
        "retryAfter": "1.500s",
    }
    assert error.retry_after_header() == "2"


def test_retryable_and_status_can_be_overridden_where_the_contract_says_so() -> None:
    error = QmtlError(ErrorCode.ERROR_CODE_VALIDATION, "bad", retryable=True, http_status=400)

    assert (error.http_status, error.retryable, error.wire_code) == (400, True, "E_VALIDATION")


def test_without_retry_after_there_is_no_header_and_no_field() -> None:
    error = QmtlError.not_found("gone", id="x")

    assert error.retry_after_header() is None
    assert not error.to_proto().HasField("retry_after")
    assert json_format.MessageToDict(error.to_proto().details) == {"id": "x"}


def test_a_received_error_keeps_a_code_this_client_does_not_know() -> None:
    detail = ErrorDetail(code="E_FROM_THE_FUTURE", message="new", retryable=True)
    detail.retry_after.FromSeconds(4)

    error = QmtlError.from_detail(detail, status=418)

    assert (error.wire_code, error.status, error.message) == ("E_FROM_THE_FUTURE", 418, "new")
    assert error.error_code == ErrorCode.ERROR_CODE_UNSPECIFIED
    assert (error.retryable, error.retry_after) == (True, 4.0)
    assert "E_FROM_THE_FUTURE" in str(error)


def test_a_received_error_maps_a_known_code_to_the_enum() -> None:
    error = QmtlError.from_detail(QmtlError.not_found("x").to_proto(), status=404)

    assert error.error_code == ErrorCode.ERROR_CODE_NOT_FOUND
    assert error.retry_after is None
