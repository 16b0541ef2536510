"""`qmtl migrate`: the Neo4j schema migrations (scripts/migrations/neo4j_index_migration.py).

The same arguments and exit codes as the script (docs/operations/neo4j.md): apply, `--status`,
`--dry-run`; 0 done, 1 failed or Neo4j unreachable (one line on stderr), 2 bad arguments.
"""

from __future__ import annotations

import argparse

from qmtl.cli.registry import Command


def _configure(parser: argparse.ArgumentParser) -> None:
    from qmtl.runtime.graph_migrations import cli

    parser.description = cli.DESCRIPTION
    cli.configure(parser)


def _run(args: argparse.Namespace) -> int:
    from qmtl.runtime.graph_migrations import cli

    return cli.run(args)


COMMAND = Command(
    name="migrate",
    help="apply the Neo4j schema migrations (constraints, TAG index); --status, --dry-run",
    configure=_configure,
    run=_run,
)
