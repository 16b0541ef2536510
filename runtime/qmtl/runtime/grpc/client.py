"""GrpcCaller: an RpcCaller calling a peer service over one grpc.aio channel.

The wire is the generated contract: each rpc's method path is `/<service>/<Method>` and its
messages are encoded with the rpc's generated classes, exactly as the protoc stubs
(`*_pb2_grpc.py`) and the generated adapter on the other side (`*_grpc.py`) use them. One
multi-callable per rpc is made with the channel, so a call looks nothing up. The channel is
opened on the first call, inside the running event loop, and connects lazily: constructing a
GrpcCaller never waits for the peer. docs/api/RPC-CALLER.md describes the behaviour.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf import message

from qmtl.runtime import contracts_version, metrics
from qmtl.runtime.client_retry import RetryPolicy
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.grpc.errors import error_from_rpc_error
from qmtl.runtime.http.limits import resolve_max_body_bytes
from qmtl.runtime.interceptors import outcome_code
from qmtl.runtime.rpc_caller import (
    DEFAULT_TIMEOUT,
    TokenSource,
    bearer,
    call_with_retries,
    check_call,
    check_timeout,
    closed_error,
)
from qmtl.runtime.spec import RpcSpec, ServiceSpec

__all__ = [
    "INITIAL_RECONNECT_BACKOFF_MS",
    "KEEPALIVE_TIMEOUT_MS",
    "KEEPALIVE_TIME_MS",
    "MAX_RECONNECT_BACKOFF_MS",
    "GrpcCaller",
]

Req = TypeVar("Req", bound=message.Message)
Resp = TypeVar("Resp", bound=message.Message)

# Pings on a connection with calls in flight, to notice a peer that vanished without closing
# it. Not more often: a grpc server refuses pings closer than 5 minutes by default
# (grpc.http2.min_recv_ping_interval_without_data_ms) and closes the connection
# (ENHANCE_YOUR_CALM) after a few; the deadline of every call bounds a shorter wait anyway.
KEEPALIVE_TIME_MS = 300_000
KEEPALIVE_TIMEOUT_MS = 20_000
# gRPC waits up to 120 s between reconnection attempts by default: a peer back after a long
# outage would stay "unavailable" to this caller for up to two minutes. Capped near
# RetryPolicy's max_backoff, so a retry finds a restarted peer within a few seconds.
INITIAL_RECONNECT_BACKOFF_MS = 100
MAX_RECONNECT_BACKOFF_MS = 5_000


# Every call names the contracts version this process speaks (qmtl.runtime.contracts_version).
_VERSION_METADATA: tuple[tuple[str, str], ...] = (
    (contracts_version.HEADER, contracts_version.SPOKEN),
)


def _method_path(service: ServiceSpec, rpc: RpcSpec[Any, Any]) -> str:
    return f"/{service.full_name}/{rpc.name}"


class GrpcCaller:
    """RpcCaller over grpc.aio to `target` ("host:port"), for the rpcs of `service`.

    `token` is a bearer service token, or a callable giving a fresh one per attempt (tokens
    expire), sent as `authorization` metadata; None sends none. Every call carries the
    `qmtl-contracts-version` metadata. `default_timeout` (seconds)
    bounds a call that gives no `timeout`, retries included: no call is unbounded. `retry`
    (default RetryPolicy()) applies to idempotent rpcs only. The channel is insecure (the
    internal network, docs/api/GRPC.md); its message size limit in both directions is the
    server's (`max_message_bytes`, default QMTL_HTTP_MAX_BODY_BYTES or 16 MiB, as
    qmtl.runtime.serve bounds its gRPC listener). `options` are added channel options (they
    override the defaults above of the same name).
    """

    def __init__(
        self,
        target: str,
        *,
        token: TokenSource,
        service: ServiceSpec,
        default_timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_message_bytes: int | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.target = target
        self.service = service
        self._token = token
        self._default_timeout = check_timeout("default_timeout", default_timeout)
        self._retry = RetryPolicy() if retry is None else retry
        limit = resolve_max_body_bytes(max_message_bytes)
        defaults: dict[str, Any] = {
            "grpc.max_send_message_length": limit,
            "grpc.max_receive_message_length": limit,
            "grpc.keepalive_time_ms": KEEPALIVE_TIME_MS,
            "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
            "grpc.keepalive_permit_without_calls": 0,
            "grpc.initial_reconnect_backoff_ms": INITIAL_RECONNECT_BACKOFF_MS,
            "grpc.max_reconnect_backoff_ms": MAX_RECONNECT_BACKOFF_MS,
        }
        defaults.update(dict(options))
        self._options = tuple(defaults.items())
        self._channel: grpc.aio.Channel | None = None
        self._methods: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}
        self._closed = False

    def _method(self, rpc: RpcSpec[Any, Any]) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        if self._closed:
            raise closed_error(self)
        if self._channel is None:
            channel = grpc.aio.insecure_channel(self.target, options=self._options)
            self._methods = {
                rpc.full_name: channel.unary_unary(
                    _method_path(self.service, rpc),
                    request_serializer=rpc.request.SerializeToString,
                    response_deserializer=rpc.response.FromString,
                )
                for rpc in self.service.rpcs
            }
            self._channel = channel
        return self._methods[rpc.full_name]

    async def call(
        self,
        rpc: RpcSpec[Req, Resp],
        request: Req,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the per-call deadline is API
    ) -> Resp:
        """`rpc`'s reply from the peer, or the QmtlError it answered (RpcCaller.call)."""
        check_call(self.service, rpc, request)
        seconds = self._default_timeout if timeout is None else check_timeout("timeout", timeout)

        async def attempt(deadline: float) -> Resp:
            method = self._method(rpc)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QmtlError.timeout(f"{rpc.full_name}: the call's deadline passed")
            authorization = bearer(self._token)
            metadata = (
                _VERSION_METADATA
                if authorization is None
                else (*_VERSION_METADATA, ("authorization", authorization))
            )
            try:
                reply: Resp = await method(request, timeout=remaining, metadata=metadata)
            except grpc.aio.AioRpcError as exc:
                raise error_from_rpc_error(exc) from None
            return reply

        started = time.perf_counter()
        code = "OK"
        try:
            return await call_with_retries(
                rpc, attempt, deadline=time.monotonic() + seconds, policy=self._retry
            )
        except BaseException as exc:
            code = outcome_code(exc)
            raise
        finally:
            metrics.CLIENT_REQUESTS.labels(rpc.full_name, code).inc()
            metrics.CLIENT_SECONDS.labels(rpc.full_name, code).observe(
                time.perf_counter() - started
            )

    async def aclose(self) -> None:
        """Closes the channel; calls in flight are cancelled. Safe to call more than once."""
        self._closed = True
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    def __repr__(self) -> str:
        return f"GrpcCaller({self.target!r}, {self.service.full_name})"
