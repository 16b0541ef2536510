"""`qmtl gateway`: the Gateway process (public + internal HTTP) and its composition root.

With `--backend memory` one process holds everything: the Gateway's in-memory store, queue and
event bus, and a DAG Manager embedded in the same process (built here, the one place that may
import both services; the services never import each other), called through an
InProcessCaller. With `--backend real`: Redis, Kafka and a DAG Manager at `--dag-manager` over
gRPC. Exit codes: 0 after SIGTERM/SIGINT and a clean shutdown; 1 a boot error no retry can fix
(a Redis without AOF under the production profile) or a listener that cannot bind; 2 a setting
it refuses. docs/operations/boot.md; every option is in the README's "Running the services".
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from qmtl.cli.registry import Command
from qmtl.cli.service_options import (
    Option,
    add_options,
    common_options,
    config_error,
    configure_logging,
    listener_options,
    seconds,
)

if TYPE_CHECKING:
    from qmtl.runtime.eventbus import EventBus
    from qmtl.runtime.rpc_caller import RpcCaller
    from qmtl.services.dag_manager.app import Embedded

PREFIX = "QMTL_GATEWAY"
DESCRIPTION = (
    "Run the Gateway: accepts strategy submissions, keeps them in a durable work queue and has "
    "the DAG Manager diff them. Serves a public HTTP listener (GET) and an internal one, plus "
    "/health and /ready on both."
)
# The scopes the Gateway's calls to the DAG Manager need (the rpcs' qmtl.api.v1.access).
DAG_MANAGER_SCOPES = ("dag:diff", "dag:read")
GATEWAY_SUBJECT = "service:gateway"
# A minted token lives an hour and is replaced after half of that: well inside the verifier's
# 24 h maximum, and one signature per half hour rather than per call.
TOKEN_TTL_S = 3600.0


def options() -> list[Option]:
    from qmtl.runtime.endpoints import ServiceEndpoints

    endpoints = ServiceEndpoints.from_env()
    return [
        *common_options(PREFIX),
        *listener_options(PREFIX, 8080, 8081),
        Option("--redis-url", "QMTL_REDIS_URL", endpoints.redis_url,
               "Redis of the strategy store and work queue (real backend)"),
        Option("--redis-prefix", "QMTL_GATEWAY_REDIS_PREFIX", "qmtl:gateway:",
               "key prefix of the strategy store and the clean-shutdown markers"),
        Option("--queue-name", "QMTL_GATEWAY_QUEUE", "gateway", "name of the work queue"),
        Option("--dag-manager", "QMTL_DAG_MANAGER_GRPC", "127.0.0.1:50051",
               "gRPC target of the DAG Manager (real backend)"),
        Option("--dag-manager-token", "QMTL_DAG_MANAGER_TOKEN", "",
               "service token for the DAG Manager; default: minted from --token-secret "
               f"({', '.join(DAG_MANAGER_SCOPES)})", secret=True),
        Option("--callback-secret", "QMTL_CALLBACK_SECRET", "",
               "HMAC secret callback deliveries are signed with (docs/operations/callbacks.md); "
               "unset: this instance delivers no callbacks", secret=True),
        Option("--callback-key-id", "QMTL_CALLBACK_KEY_ID", "k1",
               "key id of that secret, named in the signature header"),
        Option("--callback-allowed-hosts", "QMTL_CALLBACK_ALLOWED_HOSTS", "",
               "comma-separated hosts a callback URL may name (empty: any; set it in "
               "production)"),
        Option("--max-wait", "QMTL_GATEWAY_MAX_WAIT_SECONDS", "30",
               "longest wait_timeout a submission may ask for", seconds),
        Option("--diff-timeout", "QMTL_GATEWAY_DIFF_TIMEOUT_SECONDS", "30",
               "deadline of each Diff call to the DAG Manager", seconds),
        Option("--stranded-after", "QMTL_GATEWAY_STRANDED_AFTER_SECONDS", "60",
               "age of a QUEUED strategy without live work before it is re-queued", seconds),
        Option("--lease-ttl", "QMTL_GATEWAY_LEASE_TTL_SECONDS", "30",
               "lease of a work item; a crashed worker's item goes to another after it", lease),
        Option("--dashboard", "QMTL_GATEWAY_DASHBOARD", "auto",
               "who may read /dashboard on the public listener: anonymous, token (the page asks "
               "for one), off; auto: anonymous under the development profile, token under "
               "production (docs/operations/dashboard.md)",
               choices=("auto", "anonymous", "token", "off")),
        Option("--alert-down-grace", "QMTL_ALERT_DOWN_GRACE_SECONDS", "60",
               "seconds a backend stays unhealthy before a BackendDown alert "
               "(docs/operations/alerts.md)", seconds),
    ]  # fmt: skip


def lease(text: str) -> float:
    # The worker extends its lease every third of it: below a second that is a busy loop.
    value = float(text)
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"seconds >= 1, got {text}")
    return value


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    add_options(parser, options())


class _MintedToken:
    """A token source for GrpcCaller: a fresh service token before the last one half-expires."""

    def __init__(self, secret: bytes, key_id: str) -> None:
        self._secret, self._key_id = secret, key_id
        self._token, self._renew_at = "", 0.0

    def __call__(self) -> str:
        from datetime import timedelta

        from qmtl.runtime.auth import issue_token

        now = time.monotonic()
        if now >= self._renew_at:
            self._token = issue_token(
                self._secret,
                GATEWAY_SUBJECT,
                DAG_MANAGER_SCOPES,
                ttl=timedelta(seconds=TOKEN_TTL_S),
                key_id=self._key_id,
            )
            self._renew_at = now + TOKEN_TTL_S / 2
        return self._token


class GrpcDagManager:
    """The DAG Manager of `--backend real`: a separate process, over gRPC."""

    adapter = "grpc"

    def __init__(self, target: str, token: str | _MintedToken) -> None:
        self._target, self._token = target, token

    async def open(self, bus: EventBus) -> RpcCaller:
        from qmtl.dagmanager.v1.dag_manager_service_handler import DAG_MANAGER_SERVICE
        from qmtl.runtime.grpc.client import GrpcCaller

        return GrpcCaller(self._target, token=self._token, service=DAG_MANAGER_SERVICE)

    async def close(self) -> None:
        return None


class EmbeddedDagManager:
    """The DAG Manager of `--backend memory`: in this process, on the Gateway's bus."""

    adapter = "in-process"

    def __init__(self) -> None:
        self._embedded: Embedded | None = None

    async def open(self, bus: EventBus) -> RpcCaller:
        from qmtl.dagmanager.v1.dag_manager_service_handler import DAG_MANAGER_SERVICE
        from qmtl.runtime.auth import Principal
        from qmtl.runtime.inprocess import InProcessCaller
        from qmtl.services.dag_manager.app import embed

        if self._embedded is None:
            self._embedded = await embed(bus)
        principal = Principal(GATEWAY_SUBJECT, frozenset(DAG_MANAGER_SCOPES))
        return InProcessCaller(self._embedded.handler, DAG_MANAGER_SERVICE, principal=principal)

    async def close(self) -> None:
        embedded, self._embedded = self._embedded, None
        if embedded is not None:
            await embedded.aclose()


def _hosts(text: str) -> frozenset[str] | None:
    hosts = frozenset(h.strip().lower() for h in text.split(",") if h.strip())
    return hosts or None


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from qmtl.runtime.serve import ServeConfigError, ServeError
    from qmtl.runtime.service_config import Backend, ConfigError, Profile
    from qmtl.runtime.workqueue.worker import WorkerSettings
    from qmtl.services.gateway.app import serve_gateway
    from qmtl.services.gateway.boot import DagManagerLink
    from qmtl.services.gateway.config import GatewayConfig
    from qmtl.services.gateway.dashboard import DashboardAccess
    from qmtl.services.gateway.settings import GatewaySettings, InvalidGatewaySettings

    configure_logging(args.log_level)
    try:
        settings = GatewaySettings(
            max_wait=args.max_wait,
            diff_timeout=args.diff_timeout,
            stranded_after=args.stranded_after,
            worker=WorkerSettings(lease_ttl=args.lease_ttl),
            callback_allowed_hosts=_hosts(args.callback_allowed_hosts),
            source=f"qmtl/gateway/{args.instance_id or 'local'}",
        )
        config = GatewayConfig(
            backend=Backend(args.backend),
            profile=Profile(args.profile),
            public_host=args.public_host,
            public_port=args.public_port,
            internal_host=args.internal_host,
            internal_port=args.internal_port,
            redis_url=args.redis_url,
            redis_prefix=args.redis_prefix,
            queue_name=args.queue_name,
            kafka_bootstrap=args.kafka_bootstrap,
            dag_manager=args.dag_manager,
            dag_manager_token=args.dag_manager_token,
            token_secret=args.token_secret.encode(),
            token_key_id=args.token_key_id,
            callback_secret=args.callback_secret.encode(),
            callback_key_id=args.callback_key_id,
            instance_id=args.instance_id,
            grace_seconds=args.grace,
            max_body_bytes=args.max_body_bytes,
            settings=settings,
        )
        link: DagManagerLink
        if config.backend is Backend.MEMORY:
            link = EmbeddedDagManager()
        else:
            token = config.dag_manager_token or _MintedToken(
                config.token_secret, config.token_key_id
            )
            link = GrpcDagManager(config.dag_manager, token)
        dashboard = DashboardAccess(args.dashboard)
        return asyncio.run(
            serve_gateway(config, link, dashboard=dashboard, alert_down_grace=args.alert_down_grace)
        )
    except (ConfigError, ServeConfigError, InvalidGatewaySettings) as exc:
        return config_error("gateway", exc)
    except ServeError as exc:
        print(f"qmtl gateway: error: {exc}", file=sys.stderr)
        return 1


COMMAND = Command(
    name="gateway",
    help="run the Gateway service (public + internal HTTP; --backend memory|real)",
    configure=_configure,
    run=_run,
)
