"""Built-in interceptors (qmtl.runtime.pipeline.Interceptor) a service may pass to its routes.

`AccessLog` writes one line per call: transport, rpc, caller, outcome (wire code or OK) and
milliseconds. It runs inside the pipeline, after authentication and request decoding, so it
logs the calls that reached the handler (or the deadline); the transport's own refusals
(401/403, 400 decode errors, 406/415) happen before it and are not logged here.
"""

from __future__ import annotations

import logging
import time

from google.protobuf.message import Message

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
        except QmtlError as exc:
            code = exc.wire_code
            raise
        except Exception:
            code = "E_INTERNAL"  # what the transport answers for it
            raise
        except BaseException:
            code = "CANCELLED"  # the caller went away (or the server is stopping)
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
