"""How one service calls another's rpcs: the `RpcCaller` port and what its callers share.

A service holds an RpcCaller per peer and calls `await caller.call(SPEC.rpc("Diff"), request)`,
never a transport. Two implementations keep the same behaviour: `qmtl.runtime.grpc.client.
GrpcCaller` (another process, over grpc.aio) and `qmtl.runtime.inprocess.InProcessCaller`
(the embedded, one-process deployment: the peer's handler in this process). On both every call
has a deadline (the caller's default when the call gives none), failures are QmtlErrors with
the catalogue code the callee raised, and only idempotent rpcs are retried (RetryPolicy).
docs/api/RPC-CALLER.md describes the behaviour; the rpc objects come from the generated
ServiceSpecs (`ServiceSpec.rpc(name)` finds one by name).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from google.protobuf import message

from qmtl.runtime.client_retry import RetryPolicy
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.spec import RpcSpec, ServiceSpec

__all__ = [
    "DEFAULT_TIMEOUT",
    "RpcCaller",
    "TokenSource",
    "bearer",
    "call_with_retries",
    "check_call",
    "check_timeout",
    "closed_error",
]

Req = TypeVar("Req", bound=message.Message)
Resp = TypeVar("Resp", bound=message.Message)

# Seconds a call may take, retries included, unless the caller or the call says otherwise:
# the typed HTTP clients' default too (qmtl.runtime.http.client.DEFAULT_TIMEOUT).
DEFAULT_TIMEOUT = 10.0

# A bearer token, or a callable giving the current one (tokens expire: a long-running service
# mints fresh ones), or None for no Authorization at all.
TokenSource = str | Callable[[], str] | None


class RpcCaller(Protocol):
    """Calls the rpcs of one peer service; see the module docstring."""

    async def call(
        self,
        rpc: RpcSpec[Req, Resp],
        request: Req,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the per-call deadline is API
    ) -> Resp:
        """`rpc`'s reply to `request`, or QmtlError; `timeout` (seconds) bounds it, retries
        included (the caller's default when None: never unbounded)."""
        ...

    async def aclose(self) -> None:
        """Releases the caller's resources (a channel); a call after it fails."""
        ...


def _invalid(text: str) -> QmtlError:
    return QmtlError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, text)


def check_timeout(name: str, value: float) -> float:
    """`value` if it is a positive, finite number of seconds; else E_INVALID_ARGUMENT."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{name} must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise _invalid(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def check_call(service: ServiceSpec, rpc: RpcSpec[Any, Any], request: message.Message) -> None:
    """E_INVALID_ARGUMENT unless `rpc` is one of `service`'s and `request` its request type.

    Both are programming errors of the caller; they are refused before anything is sent, so
    a wrong message never reaches the wire as a different rpc's bytes.
    """
    if rpc not in service.rpcs:
        raise _invalid(f"{rpc.full_name} is not an rpc of {service.full_name}")
    if type(request) is not rpc.request:
        raise _invalid(
            f"{rpc.full_name} takes {rpc.request.DESCRIPTOR.full_name}, "
            f"got {type(request).__name__}"
        )


def closed_error(caller: object) -> QmtlError:
    """E_UNAVAILABLE for a call on a closed caller; not retryable, as no retry can succeed."""
    return QmtlError(ErrorCode.ERROR_CODE_UNAVAILABLE, f"{caller!r} is closed", retryable=False)


def bearer(token: TokenSource) -> str | None:
    """The `authorization` value for `token` (asked afresh when it is a callable)."""
    if token is None:
        return None
    return f"Bearer {token() if callable(token) else token}"


async def call_with_retries(
    rpc: RpcSpec[Any, Resp],
    attempt: Callable[[float], Awaitable[Resp]],
    *,
    deadline: float,
    policy: RetryPolicy,
) -> Resp:
    """`attempt(deadline)` until it succeeds or `policy` gives up; the last error is raised.

    `deadline` is a time.monotonic() instant. A failed attempt is retried only when the rpc
    is idempotent and the error retryable, after the policy's backoff, and only if that wait
    ends before the deadline (RetryPolicy.delay): a non-idempotent rpc is tried exactly once.
    """
    tries = 1
    while True:
        try:
            return await attempt(deadline)
        except QmtlError as error:
            remaining = deadline - time.monotonic()
            wait = policy.delay(tries, error, idempotent=rpc.idempotent, remaining=remaining)
            if wait is None:
                raise
        await policy.async_sleep(wait)
        tries += 1
