"""How a QmtlError travels on each transport; the catalogue (errors.py) says what, this says how.

HTTP (this half): the status is the code's `error_info.http_status`, the body its ErrorDetail in
the negotiated encoding (JSON when Accept allows neither), plus `Retry-After` when the error
carries a delay and `WWW-Authenticate` on every 401. Anything that is not a QmtlError is logged
with its traceback and answered as E_INTERNAL, whose body never carries the traceback.

gRPC: the status is the code's `error_info.grpc_code`; the functions of that half
(`grpc_status`, `to_grpc_trailers`, `from_grpc`) follow below.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from google.protobuf import message as message_module

from qmtl.runtime import auth, codec
from qmtl.runtime.errors import ErrorCode, ErrorDetail, QmtlError

logger = logging.getLogger("qmtl.runtime.errors")


def as_qmtl_error(exc: BaseException) -> QmtlError:
    """`exc` itself if it is a QmtlError, else E_INTERNAL (the original is logged)."""
    if isinstance(exc, QmtlError):
        return exc
    # The traceback goes to the log only: an error answer never carries one.
    logger.error("unhandled exception while serving an rpc", exc_info=exc)
    return QmtlError.internal()


class HttpError(NamedTuple):
    """An error answer as HTTP sends it."""

    status: int
    headers: dict[str, str]
    body: bytes
    media_type: str


def http_headers(err: QmtlError, authorization: str | None = None) -> dict[str, str]:
    """The headers an error answer needs: Retry-After, and WWW-Authenticate on a 401."""
    headers: dict[str, str] = {}
    retry_after = err.retry_after_header()
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if err.http_status == 401:
        # RFC 9110 section 15.5.2: a 401 MUST say how to authenticate; every 401 passes here.
        headers["WWW-Authenticate"] = auth.challenge(authorization)
    return headers


def to_http(
    exc: BaseException,
    accept: str | None,
    *,
    authorization: str | None = None,
    headers: Mapping[str, str] | None = None,
    default: codec.Encoding = codec.Encoding.PROTOBUF,
) -> HttpError:
    """`exc` as an HTTP error answer; `headers` (e.g. Allow on a 405) are sent too.

    The body's encoding follows `Accept` (`default` when it leaves the choice open).
    """
    err = as_qmtl_error(exc)
    encoding = codec.negotiate_for_error(accept, default=default)
    extra = dict(headers or {})
    extra.update(http_headers(err, authorization))
    return HttpError(
        err.http_status, extra, codec.encode(err.to_proto(), encoding), encoding.media_type
    )


# -- gRPC ---------------------------------------------------------------------------------------
# Trailing metadata key of the serialized ErrorDetail (`-bin`: gRPC base64s it on the wire).
GRPC_DETAIL_KEY = "qmtl-error-detail-bin"

# This half speaks google.rpc.Code numbers (google/rpc/code.proto) because the module must
# import without grpc; qmtl.runtime.grpc turns them into grpc.StatusCode.
GRPC_UNKNOWN = 2

# A status that arrived without an ErrorDetail (a peer that is no qmtl service, or a failure in
# gRPC itself: connection refused, the caller's own deadline) becomes the code below. Where the
# catalogue has one code for a gRPC status it is that code; where it has several, or none
# (CANCELLED, UNKNOWN, ABORTED, OUT_OF_RANGE, DATA_LOSS), the nearest general one.
_CODE_FOR_GRPC: dict[int, ErrorCode.ValueType] = {
    1: ErrorCode.ERROR_CODE_UNAVAILABLE,  # CANCELLED
    2: ErrorCode.ERROR_CODE_INTERNAL,  # UNKNOWN
    3: ErrorCode.ERROR_CODE_INVALID_ARGUMENT,  # INVALID_ARGUMENT
    4: ErrorCode.ERROR_CODE_TIMEOUT,  # DEADLINE_EXCEEDED
    5: ErrorCode.ERROR_CODE_NOT_FOUND,  # NOT_FOUND
    6: ErrorCode.ERROR_CODE_DUPLICATE,  # ALREADY_EXISTS
    7: ErrorCode.ERROR_CODE_PERMISSION_DENIED,  # PERMISSION_DENIED
    8: ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,  # RESOURCE_EXHAUSTED
    9: ErrorCode.ERROR_CODE_INVALID_STATE,  # FAILED_PRECONDITION
    10: ErrorCode.ERROR_CODE_INVALID_STATE,  # ABORTED
    11: ErrorCode.ERROR_CODE_INVALID_ARGUMENT,  # OUT_OF_RANGE
    12: ErrorCode.ERROR_CODE_UNIMPLEMENTED,  # UNIMPLEMENTED
    13: ErrorCode.ERROR_CODE_INTERNAL,  # INTERNAL
    14: ErrorCode.ERROR_CODE_UNAVAILABLE,  # UNAVAILABLE
    15: ErrorCode.ERROR_CODE_INTERNAL,  # DATA_LOSS
    16: ErrorCode.ERROR_CODE_UNAUTHENTICATED,  # UNAUTHENTICATED
}


def grpc_status(err: QmtlError) -> int:
    """The google.rpc.Code number `err` is answered with: its code's `error_info.grpc_code`."""
    return err.info.grpc_code


def to_grpc_trailers(err: QmtlError) -> tuple[tuple[str, bytes], ...]:
    """The trailing metadata of an error answer: its ErrorDetail, serialized."""
    return ((GRPC_DETAIL_KEY, err.detail.SerializeToString()),)


def from_grpc(
    code: int, trailers: Iterable[tuple[str, str | bytes]] | None, message: str = ""
) -> QmtlError:
    """The QmtlError a failed gRPC call reports, as the server raised it.

    `code` is the call's google.rpc.Code number, `trailers` its trailing metadata and `message`
    its status message. With a `qmtl-error-detail-bin` trailer the error is the ErrorDetail it
    carries (a wire code this runtime does not know keeps its string); without one, or with
    one that does not decode, the status alone is mapped (_CODE_FOR_GRPC) and `details` holds
    `grpc_code`.
    """
    raw = next((value for key, value in trailers or () if key == GRPC_DETAIL_KEY), None)
    if isinstance(raw, bytes):
        try:
            detail = ErrorDetail.FromString(raw)
        except message_module.DecodeError:
            detail = None
        if detail is not None and detail.code:
            err = QmtlError.from_detail(detail)
            if err.info.grpc_code != code:
                # An unknown wire code (a newer server): the status it came with is the truth.
                err.info = dataclasses.replace(err.info, grpc_code=code)
            return err
    fallback = _CODE_FOR_GRPC.get(code, ErrorCode.ERROR_CODE_INTERNAL)
    err = QmtlError(fallback, message or f"gRPC status {code}", details={"grpc_code": code})
    err.info = dataclasses.replace(err.info, grpc_code=code)
    return err
