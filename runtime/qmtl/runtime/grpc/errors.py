"""QmtlError <-> gRPC status, on top of the transport-neutral half in qmtl.runtime.error_mapping.

error_mapping speaks google.rpc.Code numbers so that the runtime core imports without grpc;
this module converts them to and from grpc.StatusCode.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import grpc

from qmtl.runtime import error_mapping
from qmtl.runtime.errors import QmtlError

_BY_NUMBER: dict[int, grpc.StatusCode] = {status.value[0]: status for status in grpc.StatusCode}

Pair = tuple[str, str | bytes]


def status_code(err: QmtlError) -> grpc.StatusCode:
    """The grpc.StatusCode `err` is answered with (its catalogue `grpc_code`)."""
    return _BY_NUMBER.get(error_mapping.grpc_status(err), grpc.StatusCode.UNKNOWN)


def metadata_pairs(metadata: Iterable[object] | None) -> list[Pair]:
    """(key, value) pairs of any gRPC metadata: grpc.aio.Metadata, tuples or `_Metadatum`s."""
    # Every form gRPC hands out iterates as (key, value) pairs: `_Metadatum` is a namedtuple.
    return [cast(Pair, tuple(cast(Iterable[object], item))) for item in metadata or ()]


def error_from_rpc_error(exc: grpc.RpcError) -> QmtlError:
    """The QmtlError a failed call carries, as the serving side raised it.

    A client calling a qmtl service over gRPC catches `grpc.RpcError` (grpc.aio.AioRpcError,
    or a sync call's error) and gets back the same code, message, details and retryability
    the handler raised; see error_mapping.from_grpc for a status without an ErrorDetail.
    """
    code = exc.code()
    number = code.value[0] if isinstance(code, grpc.StatusCode) else error_mapping.GRPC_UNKNOWN
    trailers = metadata_pairs(exc.trailing_metadata())
    return error_mapping.from_grpc(number, trailers, exc.details() or "")
