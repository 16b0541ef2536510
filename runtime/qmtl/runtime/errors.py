"""The platform's error model: one exception root whose wire form is `qmtl.common.v1.ErrorDetail`.

A service raises `QmtlError` with a `qmtl.common.v1.ErrorCode`; the HTTP status, the wire code
(`E_...`) and the default `retryable` flag are not written here but read once, at import, from
each enum value's `(qmtl.api.v1.error_info)` option, so the schema stays the only catalogue.
The same type is what a typed client raises (`QmtlError.from_detail`): it carries the
`ErrorDetail` it received and the HTTP status it came with, and a code the client does not know
yet (a newer server) still arrives intact as a string in `.wire_code`. The gRPC status of each
code is catalogue data too (`error_info.grpc_code`); qmtl.runtime.error_mapping maps errors onto
each transport.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Any, TypeAlias

from google.protobuf import duration_pb2, json_format, struct_pb2

from qmtl.api.v1 import error_code_options_pb2
from qmtl.common.v1 import error_code_pb2, error_pb2

ErrorCode = error_code_pb2.ErrorCode
Code: TypeAlias = error_code_pb2.ErrorCode.ValueType
ErrorDetail = error_pb2.ErrorDetail


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The wire contract of one error code, as its `error_info` option states it."""

    code: Code
    wire_code: str
    http_status: int
    retryable: bool
    grpc_code: int = 2  # google.rpc.Code number; UNKNOWN for a code this runtime does not know


def _read_catalogue() -> tuple[Mapping[Code, ErrorInfo], Mapping[str, ErrorInfo]]:
    by_code: dict[Code, ErrorInfo] = {}
    extension = error_code_options_pb2.error_info
    for value in ErrorCode.DESCRIPTOR.values:
        options = value.GetOptions()
        if not options.HasExtension(extension):
            continue  # ERROR_CODE_UNSPECIFIED: never sent
        info = options.Extensions[extension]
        code = ErrorCode.Value(value.name)
        by_code[code] = ErrorInfo(
            code, info.code, info.http_status, info.retryable, int(info.grpc_code)
        )
    return MappingProxyType(by_code), MappingProxyType({i.wire_code: i for i in by_code.values()})


_BY_CODE, _BY_WIRE = _read_catalogue()


def error_info(code: Code) -> ErrorInfo:
    """The catalogue entry of `code`; KeyError for ERROR_CODE_UNSPECIFIED or an unknown number."""
    return _BY_CODE[code]


def error_info_for_wire(wire_code: str) -> ErrorInfo | None:
    """The catalogue entry whose wire code is `wire_code` (`E_NOT_FOUND`); None if unknown."""
    return _BY_WIRE.get(wire_code)


def known_codes() -> tuple[ErrorInfo, ...]:
    """Every code that has an `error_info`, in enum order."""
    return tuple(_BY_CODE.values())


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class QmtlError(Exception):
    """An error a service reports to its caller as an ErrorDetail with the code's HTTP status.

    `details` must be JSON-like (str, numbers, bools, None, lists and dicts of those): it
    travels as a `google.protobuf.Struct`. `retryable` defaults to the code's catalogue flag.
    `http_status` overrides the code's catalogue status; the generated surface never needs to,
    since every status docs/api/HTTP.md names has a code of its own.
    """

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        retryable: bool | None = None,
        retry_after: float | timedelta | None = None,
        http_status: int | None = None,
    ) -> None:
        # Fails fast on ERROR_CODE_UNSPECIFIED: an error without a status cannot be served.
        info = error_info(code)
        super().__init__(message)
        self.code: Code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.retryable = info.retryable if retryable is None else retryable
        self.retry_after: float | None = None if retry_after is None else _seconds(retry_after)
        self.info = info
        self._http_status = http_status
        self._detail: error_pb2.ErrorDetail | None = None
        # The HTTP status the error was answered with; a server-side error has not been
        # answered yet, so its own status stands in.
        self.status: int = self.http_status

    @classmethod
    def from_detail(cls, detail: error_pb2.ErrorDetail, *, status: int | None = None) -> QmtlError:
        """The error an ErrorDetail describes, as a client receives it.

        `status` is the HTTP status it was answered with (0: no answer at all, e.g. the
        connection failed; None: not known, the catalogue's status stands in). A wire code
        this runtime does not know keeps its string in `.wire_code`, with `.code`
        ERROR_CODE_UNSPECIFIED; `.detail` is `detail` itself, unknown fields included.
        """
        known = error_info_for_wire(detail.code)
        info = known or ErrorInfo(
            ErrorCode.ERROR_CODE_UNSPECIFIED,
            detail.code,
            status or _UNKNOWN_STATUS,
            detail.retryable,
        )
        error = cls.__new__(cls)
        Exception.__init__(error, detail.message)
        error.code = info.code
        error.message = detail.message
        error.details = _struct_to_dict(detail.details)
        error.retryable = detail.retryable
        error.retry_after = (
            detail.retry_after.ToTimedelta().total_seconds()
            if detail.HasField("retry_after")
            else None
        )
        error.info = info
        error._http_status = None
        error._detail = detail
        error.status = error.http_status if status is None else status
        return error

    @property
    def detail(self) -> error_pb2.ErrorDetail:
        """The wire form: the ErrorDetail received, or the one this error is sent as."""
        return self._detail if self._detail is not None else self.to_proto()

    @property
    def error_code(self) -> Code:
        """The code as the enum (the same as `.code`); ERROR_CODE_UNSPECIFIED when unknown."""
        return self.code

    @property
    def wire_code(self) -> str:
        return self.info.wire_code

    @property
    def http_status(self) -> int:
        return self.info.http_status if self._http_status is None else self._http_status

    def to_proto(self) -> error_pb2.ErrorDetail:
        detail = ErrorDetail(code=self.wire_code, message=self.message, retryable=self.retryable)
        if self.details:
            detail.details.update(self.details)
        if self.retry_after is not None:
            detail.retry_after.CopyFrom(_duration(self.retry_after))
        return detail

    def retry_after_header(self) -> str | None:
        """The `Retry-After` value: whole seconds, rounded up, as HTTP.md asks."""
        if self.retry_after is None:
            return None
        return str(max(0, math.ceil(self.retry_after)))

    def __repr__(self) -> str:
        return f"QmtlError({self.wire_code}, {self.message!r})"

    def __str__(self) -> str:
        if self._detail is not None:
            return f"{self.wire_code} (HTTP {self.status}): {self.message}"
        return self.message

    # Constructors for the codes the HTTP layer and most handlers raise.
    @classmethod
    def validation(cls, message: str, **details: Any) -> QmtlError:
        return cls(ErrorCode.ERROR_CODE_VALIDATION, message, details=details)

    @classmethod
    def not_found(cls, message: str, **details: Any) -> QmtlError:
        return cls(ErrorCode.ERROR_CODE_NOT_FOUND, message, details=details)

    @classmethod
    def unauthenticated(cls, message: str) -> QmtlError:
        return cls(ErrorCode.ERROR_CODE_UNAUTHENTICATED, message)

    @classmethod
    def permission_denied(cls, message: str, **details: Any) -> QmtlError:
        return cls(ErrorCode.ERROR_CODE_PERMISSION_DENIED, message, details=details)

    @classmethod
    def malformed_body(cls, message: str) -> QmtlError:
        return cls(ErrorCode.ERROR_CODE_MALFORMED_BODY, message)

    @classmethod
    def unavailable(
        cls, message: str, *, retry_after: float | timedelta | None = None, **details: Any
    ) -> QmtlError:
        return cls(
            ErrorCode.ERROR_CODE_UNAVAILABLE, message, details=details, retry_after=retry_after
        )

    @classmethod
    def internal(cls, message: str = "internal error") -> QmtlError:
        return cls(ErrorCode.ERROR_CODE_INTERNAL, message)

    @classmethod
    def timeout(cls, message: str = "the call's deadline passed") -> QmtlError:
        return cls(ErrorCode.ERROR_CODE_TIMEOUT, message)


# The status a received error with an unknown code and no HTTP status is given.
_UNKNOWN_STATUS = 500


def unimplemented(rpc_full_name: str) -> QmtlError:
    """E_UNIMPLEMENTED (501) for an rpc the service does not implement."""
    return QmtlError(
        ErrorCode.ERROR_CODE_UNIMPLEMENTED,
        f"{rpc_full_name} is not implemented by this service",
        details={"rpc": rpc_full_name},
    )


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = math.floor(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def _struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    result: dict[str, Any] = json_format.MessageToDict(struct)
    return result
