"""The settings of a `qmtl dagmanager` process, checked before anything connects or binds.

The command line (qmtl.cli.dagmanager) fills them from flags with `QMTL_*` environment
defaults; the README's "Running the services" table lists every one.
"""

from __future__ import annotations

from dataclasses import dataclass

from qmtl.runtime.graph_migrations.steps import GraphNames, InvalidGraphPrefix
from qmtl.runtime.service_config import Backend, ConfigError, Profile, check_profile

SERVICE = "dag-manager"
DEFAULT_PUBLIC_PORT = 8090
DEFAULT_INTERNAL_PORT = 8091
DEFAULT_GRPC_PORT = 50051


@dataclass(frozen=True, slots=True)
class DagManagerConfig:
    backend: Backend = Backend.MEMORY
    profile: Profile = Profile.DEVELOPMENT
    public_host: str = "127.0.0.1"
    public_port: int = DEFAULT_PUBLIC_PORT
    internal_host: str = "127.0.0.1"
    internal_port: int = DEFAULT_INTERNAL_PORT
    grpc_host: str = "127.0.0.1"
    grpc_port: int = DEFAULT_GRPC_PORT
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: str = ""
    graph_prefix: str = ""
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_replication: int = 1
    token_secret: bytes = b""
    token_key_id: str = ""
    instance_id: str = ""  # empty: hostname:<internal port>
    grace_seconds: float = 10.0
    max_body_bytes: int | None = None

    def __post_init__(self) -> None:
        check_profile(self.profile, self.backend, self.token_secret)
        if self.kafka_replication < 1:
            raise ConfigError(f"--kafka-replication must be >= 1, got {self.kafka_replication}")
        try:
            GraphNames(self.graph_prefix)
        except InvalidGraphPrefix as exc:
            raise ConfigError(f"--graph-prefix: {exc}") from exc

    @property
    def graph_names(self) -> GraphNames:
        return GraphNames(self.graph_prefix)
