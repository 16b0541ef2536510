"""Addresses of the real backing services, read from the same variables as scripts/services/.

The start scripts and the Python side must agree on ports and credentials, so both read
QMTL_REDIS_PORT, QMTL_KAFKA_PORT, QMTL_NEO4J_BOLT_PORT, QMTL_NEO4J_USER and
QMTL_NEO4J_PASSWORD with the same defaults. A full URL variable (QMTL_REDIS_URL,
QMTL_KAFKA_BOOTSTRAP, QMTL_NEO4J_URI) overrides the port variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
DEFAULT_REDIS_PORT = 6379
DEFAULT_KAFKA_PORT = 9092
DEFAULT_NEO4J_BOLT_PORT = 7687
DEFAULT_NEO4J_USER = "neo4j"
# A development default only; the production profile must be given its own secret.
DEFAULT_NEO4J_PASSWORD = "qmtl-dev-password"


class EndpointConfigError(ValueError):
    """An endpoint variable holds a value that cannot be used."""


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise EndpointConfigError(f"{name} must be a TCP port number, got {raw!r}") from None
    if not 0 < port < 65536:
        raise EndpointConfigError(f"{name} must be between 1 and 65535, got {port}")
    return port


@dataclass(frozen=True, slots=True)
class ServiceEndpoints:
    """Where Redis, Kafka and Neo4j listen, and how to log in to Neo4j."""

    redis_url: str
    kafka_bootstrap: str
    neo4j_uri: str
    neo4j_user: str
    neo4j_password: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceEndpoints:
        """Reads the endpoints from `env` (the process environment by default)."""
        env = os.environ if env is None else env
        redis_port = _port(env, "QMTL_REDIS_PORT", DEFAULT_REDIS_PORT)
        kafka_port = _port(env, "QMTL_KAFKA_PORT", DEFAULT_KAFKA_PORT)
        bolt_port = _port(env, "QMTL_NEO4J_BOLT_PORT", DEFAULT_NEO4J_BOLT_PORT)
        return cls(
            redis_url=env.get("QMTL_REDIS_URL") or f"redis://{LOOPBACK}:{redis_port}/0",
            kafka_bootstrap=env.get("QMTL_KAFKA_BOOTSTRAP") or f"{LOOPBACK}:{kafka_port}",
            neo4j_uri=env.get("QMTL_NEO4J_URI") or f"bolt://{LOOPBACK}:{bolt_port}",
            neo4j_user=env.get("QMTL_NEO4J_USER") or DEFAULT_NEO4J_USER,
            neo4j_password=env.get("QMTL_NEO4J_PASSWORD") or DEFAULT_NEO4J_PASSWORD,
        )
