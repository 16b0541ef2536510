"""The settings of a `qmtl gateway` process, checked before anything connects or binds.

The command line (qmtl.cli.gateway) fills them from flags with `QMTL_*` environment defaults;
the README's "Running the services" table lists every one. The handler's and worker's
tunables are GatewaySettings (settings.py), carried here as `settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qmtl.runtime.service_config import Backend, ConfigError, Profile, check_profile

from .settings import GatewaySettings

SERVICE = "gateway"
DEFAULT_PUBLIC_PORT = 8080
DEFAULT_INTERNAL_PORT = 8081
DEFAULT_DAG_MANAGER = "127.0.0.1:50051"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    backend: Backend = Backend.MEMORY
    profile: Profile = Profile.DEVELOPMENT
    public_host: str = "127.0.0.1"
    public_port: int = DEFAULT_PUBLIC_PORT
    internal_host: str = "127.0.0.1"
    internal_port: int = DEFAULT_INTERNAL_PORT
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "qmtl:gateway:"
    queue_name: str = "gateway"
    kafka_bootstrap: str = "127.0.0.1:9092"
    dag_manager: str = DEFAULT_DAG_MANAGER  # gRPC target of the DAG Manager (real backend)
    dag_manager_token: str = ""  # a token to call it with; empty: minted from token_secret
    token_secret: bytes = b""
    token_key_id: str = ""
    callback_secret: bytes = b""  # signs callback deliveries; empty: callbacks are not sent
    callback_key_id: str = "k1"
    instance_id: str = ""  # empty: hostname:<internal port>
    grace_seconds: float = 10.0
    max_body_bytes: int | None = None
    settings: GatewaySettings = field(default_factory=GatewaySettings)

    def __post_init__(self) -> None:
        check_profile(self.profile, self.backend, self.token_secret)
        if self.backend is Backend.REAL and not (self.dag_manager_token or self.token_secret):
            raise ConfigError(
                "--backend real calls the DAG Manager with a service token: give "
                "--token-secret (shared with the DAG Manager) or --dag-manager-token"
            )
        if self.callback_secret:
            from qmtl.runtime.callbacks.errors import InvalidSigningKeyError
            from qmtl.runtime.callbacks.signing import SigningKey

            try:
                SigningKey(self.callback_key_id, self.callback_secret)
            except InvalidSigningKeyError as exc:
                raise ConfigError(f"callback signing key: {exc.message}") from exc
        if not self.redis_prefix:
            raise ConfigError("--redis-prefix must not be empty")
        if not self.queue_name or any(c in self.queue_name for c in "{}: "):
            # The Redis queue's own rule (its name goes into a hash-tagged key prefix).
            raise ConfigError(
                f"--queue-name must be non-empty without braces, colons or spaces: "
                f"{self.queue_name!r}"
            )
