"""`qmtl dagmanager`: the DAG Manager process (public + internal HTTP, gRPC).

Exit codes: 0 after SIGTERM/SIGINT and a clean shutdown; 1 a boot error no retry can fix or a
listener that cannot bind (one line on stderr); 2 a setting it refuses (one line on stderr).
docs/operations/boot.md; every option is in the README's "Running the services" table.
"""

from __future__ import annotations

import argparse

from qmtl.cli.registry import Command
from qmtl.cli.service_options import (
    Option,
    add_options,
    common_options,
    config_error,
    configure_logging,
    listener_options,
    port,
    seconds,
)

PREFIX = "QMTL_DAGMANAGER"
DESCRIPTION = (
    "Run the DAG Manager: diffs strategy DAGs against the global graph and owns the node "
    "topics. Serves a public HTTP listener (GET), an internal one and gRPC, plus /health and "
    "/ready on both HTTP listeners."
)


def options() -> list[Option]:
    from qmtl.runtime.endpoints import ServiceEndpoints

    endpoints = ServiceEndpoints.from_env()
    return [
        *common_options(PREFIX),
        *listener_options(PREFIX, 8090, 8091),
        Option(
            "--grpc-host",
            f"{PREFIX}_GRPC_HOST",
            "127.0.0.1",
            "gRPC listener host (every rpc: keep it off public networks)",
        ),
        Option("--grpc-port", f"{PREFIX}_GRPC_PORT", "50051", "gRPC listener port", port),
        Option("--neo4j-uri", "QMTL_NEO4J_URI", endpoints.neo4j_uri, "Neo4j Bolt URI (real)"),
        Option("--neo4j-user", "QMTL_NEO4J_USER", endpoints.neo4j_user, "Neo4j user (real)"),
        Option(
            "--neo4j-password",
            "QMTL_NEO4J_PASSWORD",
            "",
            "Neo4j password (real; default the development password of scripts/services/neo4j.sh)",
            secret=True,
        ),
        Option(
            "--graph-prefix",
            "QMTL_GRAPH_PREFIX",
            "",
            "label prefix of the graph (side-by-side or test graphs; `qmtl migrate "
            "--label-prefix` migrates one)",
        ),
        Option(
            "--kafka-replication",
            "QMTL_KAFKA_REPLICATION",
            "1",
            "replication factor of the event topics it ensures (3 in production)",
            int,
        ),
        Option(
            "--alert-down-grace",
            "QMTL_ALERT_DOWN_GRACE_SECONDS",
            "60",
            "seconds a backend stays unhealthy before a BackendDown alert "
            "(docs/operations/alerts.md)",
            seconds,
        ),
    ]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    add_options(parser, options())


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from qmtl.runtime.endpoints import ServiceEndpoints
    from qmtl.runtime.serve import ServeConfigError, ServeError
    from qmtl.runtime.service_config import Backend, ConfigError, Profile
    from qmtl.services.dag_manager.app import serve_dag_manager
    from qmtl.services.dag_manager.config import DagManagerConfig

    configure_logging(args.log_level)
    try:
        config = DagManagerConfig(
            backend=Backend(args.backend),
            profile=Profile(args.profile),
            public_host=args.public_host,
            public_port=args.public_port,
            internal_host=args.internal_host,
            internal_port=args.internal_port,
            grpc_host=args.grpc_host,
            grpc_port=args.grpc_port,
            neo4j_uri=args.neo4j_uri,
            neo4j_user=args.neo4j_user,
            neo4j_password=args.neo4j_password or ServiceEndpoints.from_env().neo4j_password,
            graph_prefix=args.graph_prefix,
            kafka_bootstrap=args.kafka_bootstrap,
            kafka_replication=args.kafka_replication,
            token_secret=args.token_secret.encode(),
            token_key_id=args.token_key_id,
            instance_id=args.instance_id,
            grace_seconds=args.grace,
            max_body_bytes=args.max_body_bytes,
        )
        return asyncio.run(serve_dag_manager(config, alert_down_grace=args.alert_down_grace))
    except (ConfigError, ServeConfigError) as exc:
        return config_error("dagmanager", exc)
    except ServeError as exc:
        print(f"qmtl dagmanager: error: {exc}", file=sys.stderr)
        return 1


COMMAND = Command(
    name="dagmanager",
    help="run the DAG Manager service (public + internal HTTP, gRPC; --backend memory|real)",
    configure=_configure,
    run=_run,
)
