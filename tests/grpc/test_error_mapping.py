"""QmtlError <-> gRPC status and trailers (qmtl.runtime.error_mapping, gRPC half), no server."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

from qmtl.common.v1.error_pb2 import ErrorDetail
from qmtl.runtime import error_mapping
from qmtl.runtime.errors import ErrorCode, ErrorInfo, QmtlError, known_codes
from qmtl.runtime.grpc import status_code

S = grpc.StatusCode


def number(status: grpc.StatusCode) -> int:
    """The google.rpc.Code number of a status, which error_mapping speaks."""
    code: int = status.value[0]
    return code


@pytest.mark.parametrize("info", known_codes(), ids=lambda info: info.wire_code)
def test_each_code_round_trips_through_status_and_trailers(info: ErrorInfo) -> None:
    sent = QmtlError(
        info.code,
        "something specific",
        details={"strategy_id": "s-1", "n": 3},
        retryable=not info.retryable,
        retry_after=2.5,
    )

    sent_as = error_mapping.grpc_status(sent)
    received = error_mapping.from_grpc(sent_as, error_mapping.to_grpc_trailers(sent), "ignored")

    assert sent_as == info.grpc_code != number(S.OK)
    assert number(status_code(sent)) == sent_as
    assert (received.code, received.wire_code, received.message) == (
        info.code,
        info.wire_code,
        "something specific",
    )
    assert received.details == {"strategy_id": "s-1", "n": 3}
    assert received.retryable is (not info.retryable)
    assert received.retry_after == 2.5
    assert received.detail == sent.to_proto()


def test_the_catalogue_names_the_grpc_status_of_the_codes_the_adapter_relies_on() -> None:
    expected = {
        ErrorCode.ERROR_CODE_UNAUTHENTICATED: number(S.UNAUTHENTICATED),
        ErrorCode.ERROR_CODE_PERMISSION_DENIED: number(S.PERMISSION_DENIED),
        ErrorCode.ERROR_CODE_UNIMPLEMENTED: number(S.UNIMPLEMENTED),
        ErrorCode.ERROR_CODE_TIMEOUT: number(S.DEADLINE_EXCEEDED),
        ErrorCode.ERROR_CODE_INTERNAL: number(S.INTERNAL),
        ErrorCode.ERROR_CODE_NOT_FOUND: number(S.NOT_FOUND),
    }
    for code, status in expected.items():
        assert error_mapping.grpc_status(QmtlError(code, "x")) == status


def test_a_wire_code_this_runtime_does_not_know_keeps_its_string_and_status() -> None:
    detail = ErrorDetail(code="E_FROM_THE_FUTURE", message="newer server", retryable=True)
    trailers = [(error_mapping.GRPC_DETAIL_KEY, detail.SerializeToString())]

    received = error_mapping.from_grpc(number(S.ABORTED), trailers)

    assert received.wire_code == "E_FROM_THE_FUTURE"
    assert received.code == ErrorCode.ERROR_CODE_UNSPECIFIED
    assert received.retryable is True
    assert error_mapping.grpc_status(received) == number(S.ABORTED)


@pytest.mark.parametrize(
    "trailers",
    [None, [], [("other-bin", b"\x00")], [(error_mapping.GRPC_DETAIL_KEY, b"\xff\xff\xff")]],
    ids=["none", "empty", "other-key", "undecodable"],
)
def test_a_status_without_a_usable_detail_maps_the_status_alone(
    trailers: list[tuple[str, bytes]] | None,
) -> None:
    received = error_mapping.from_grpc(number(S.NOT_FOUND), trailers, "no such thing")

    assert received.code == ErrorCode.ERROR_CODE_NOT_FOUND
    assert received.message == "no such thing"
    assert received.details == {"grpc_code": number(S.NOT_FOUND)}
    assert error_mapping.grpc_status(received) == number(S.NOT_FOUND)


@pytest.mark.parametrize("status", list(grpc.StatusCode), ids=lambda s: s.name)
def test_every_grpc_status_maps_to_a_code_whose_meaning_it_shares(status: grpc.StatusCode) -> None:
    received = error_mapping.from_grpc(number(status), None)

    # Where the catalogue serves the status, the code is one the catalogue serves it with;
    # statuses the catalogue never sends (CANCELLED, UNKNOWN, ABORTED, ...) get a general one.
    served = {info.code for info in known_codes() if info.grpc_code == number(status)}
    assert received.code in served or not served
    assert error_mapping.grpc_status(received) == number(status)
    assert received.message  # never empty: the status stands in for a missing message


def test_the_runtime_core_and_the_error_mapping_import_without_grpc() -> None:
    # The gRPC half of error_mapping speaks google.rpc.Code numbers so that a client-only
    # install (no grpcio) can still import the contract and map errors.
    code = (
        "import sys; sys.modules['grpc'] = None\n"
        "import qmtl.runtime.gen, qmtl.runtime.error_mapping, qmtl.runtime.pipeline\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
