"""Built-in interceptors (qmtl.runtime.pipeline.Interceptor) a service may pass to its routes.

`AccessLog` writes one line per call: transport, rpc, caller, outcome (wire code or OK) and
milliseconds. It runs inside the pipeline, after authentication and request decoding, so it
logs the calls that reached the handler (or the deadline); the transport's own refusals
(401/403, 400 decode errors, 406/415) happen before it and are not logged here.

`RequestMetrics` counts and times the same calls into `qmtl_requests_total` and
`qmtl_request_duration_seconds` (qmtl.runtime.metrics), labelled rpc, transport and code; serve
puts it first in every service's chain, so HTTP and gRPC calls are measured alike.
"""

from __future__ import annotations

import logging
import time

from google.protobuf.message import Message

from qmtl.runtime import metrics
from qmtl.runtime.context import Context
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.pipeline import Next

ACCESS_LOGGER = "qmtl.access"


class AccessLog:
    """Logs `<transport> <rpc> principal=<subject|-> code=<OK|E_...> <ms>ms` per call.

    The fields are also on the record (`extra`): rpc, transport, principal, code, ms.
    """

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)
        self.level = level

    async def __call__(self, request: Message, ctx: Context, call_next: Next) -> Message:
        start = time.perf_counter()
        code = "OK"
        try:
            return await call_next(request, ctx)
        except BaseException as exc:
            code = outcome_code(exc)
            raise
        finally:
            if self.logger.isEnabledFor(self.level):
                ms = (time.perf_counter() - start) * 1000
                subject = ctx.principal.subject if ctx.principal is not None else "-"
                self.logger.log(
                    self.level,
                    "%s %s principal=%s code=%s %.1fms",
                    ctx.transport,
                    ctx.rpc.full_name,
                    subject,
                    code,
                    ms,
                    extra={
                        "rpc": ctx.rpc.full_name,
                        "transport": ctx.transport,
                        "principal": subject,
                        "code": code,
                        "ms": ms,
                    },
                )


def outcome_code(exc: BaseException) -> str:
    """The code a call that raised `exc` is logged and counted under."""
    if isinstance(exc, QmtlError):
        return exc.wire_code
    if isinstance(exc, Exception):
        return "E_INTERNAL"  # what the transport answers for it
    return "CANCELLED"  # the caller went away (or the server is stopping)


class RequestMetrics:
    """Counts and times each call by rpc, transport and outcome code (qmtl.runtime.metrics)."""

    async def __call__(self, request: Message, ctx: Context, call_next: Next) -> Message:
        start = time.perf_counter()
        code = "OK"
        try:
            return await call_next(request, ctx)
        except BaseException as exc:
            code = outcome_code(exc)
            raise
        finally:
            labels = (ctx.rpc.full_name, ctx.transport, code)
            metrics.REQUESTS.labels(*labels).inc()
            metrics.REQUEST_SECONDS.labels(*labels).observe(time.perf_counter() - start)
