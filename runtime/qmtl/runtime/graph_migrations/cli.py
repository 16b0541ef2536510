"""`neo4j_index_migration.py` / `qmtl migrate`: apply, --status, --dry-run.

Exit codes: 0 done (or nothing to do), 1 the migration failed or Neo4j is unreachable (one line
on stderr), 2 bad arguments (argparse). Credentials default to the QMTL_NEO4J_* variables read
by qmtl.runtime.endpoints, so the CLI and the services agree.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TextIO

from qmtl.runtime.endpoints import EndpointConfigError, ServiceEndpoints
from qmtl.runtime.graph_migrations.runner import (
    DEFAULT_LEASE_S,
    DEFAULT_WAIT_S,
    MigrationError,
    MigrationStatus,
    migration_status,
    plan,
    run_migrations,
)
from qmtl.runtime.graph_migrations.steps import GraphNames, InvalidGraphPrefix

CONNECT_TIMEOUT_S = 10.0


DESCRIPTION = (
    "Apply the versioned Neo4j schema migrations of the global DAG "
    "(constraints, the TAG index, interval indexes). Safe to run twice or concurrently."
)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    configure(parser)
    return parser


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of the script and of `qmtl migrate`."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--status", action="store_true", help="print applied/pending and index states"
    )
    mode.add_argument("--dry-run", action="store_true", help="print the Cypher, change nothing")
    parser.add_argument("--uri", help="Bolt URI (default: QMTL_NEO4J_URI or bolt://127.0.0.1:7687)")
    parser.add_argument("--user", help="user (default: QMTL_NEO4J_USER or neo4j)")
    parser.add_argument("--password", help="password (default: QMTL_NEO4J_PASSWORD)")
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help="how long to wait for another runner's lock (default %(default)s)",
    )
    parser.add_argument(
        "--label-prefix",
        default="",
        help="label prefix of the graph to migrate (a side-by-side or test graph; the same as "
        "qmtl dagmanager --graph-prefix); default: none",
    )


def format_status(status: MigrationStatus) -> str:
    lines = [f"at head: {'yes' if status.at_head else 'no'}"]
    lines += [f"applied {r.version} {r.name} at {r.applied_at}" for r in status.applied]
    lines += [f"pending {m.version} {m.name}" for m in status.pending]
    lines += [f"unknown {v} (recorded by a newer version)" for v in status.unknown_versions]
    lines += [f"checksum-mismatch {v}" for v in status.checksum_mismatches]
    lines += [f"index {o.name} {o.state}" for o in status.objects]
    return "\n".join(lines)


async def _connect_and_run(args: argparse.Namespace, names: GraphNames, out: TextIO) -> None:
    from neo4j import AsyncGraphDatabase

    endpoints = ServiceEndpoints.from_env()
    uri = args.uri or endpoints.neo4j_uri
    auth = (args.user or endpoints.neo4j_user, args.password or endpoints.neo4j_password)
    driver = AsyncGraphDatabase.driver(uri, auth=auth, connection_timeout=CONNECT_TIMEOUT_S)
    try:
        await driver.verify_connectivity()
        if args.status:
            print(format_status(await migration_status(driver, names=names)), file=out)
            return
        report = await run_migrations(
            driver, names=names, lease_s=DEFAULT_LEASE_S, wait_s=args.wait
        )
        for m in report.applied:
            print(f"applied {m.version} {m.name}", file=out)
        if not report.applied:
            print("nothing to do: already at head", file=out)
    finally:
        await driver.close()


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    return run(build_parser(prog).parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Runs parsed arguments (configure's); the exit status."""
    try:
        names = GraphNames(args.label_prefix)
        if args.dry_run:
            for statement in plan(names):
                print(f"{statement};")
            return 0
        asyncio.run(_connect_and_run(args, names, sys.stdout))
    except (MigrationError, InvalidGraphPrefix, EndpointConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the driver's errors (unreachable, auth, Cypher): one line, no trace
        from neo4j.exceptions import DriverError, Neo4jError

        if not isinstance(exc, (Neo4jError, DriverError, OSError)):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: Neo4j ({type(exc).__name__}): {reason}", file=sys.stderr)
        return 1
    return 0
