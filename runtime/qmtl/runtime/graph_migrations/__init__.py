"""Versioned Neo4j schema migrations of the global DAG (docs/operations/neo4j.md).

`run_migrations`, `migration_status` and `check_at_head` take an async `neo4j` driver; the CLI
(`qmtl.runtime.graph_migrations.cli.main`) is what `scripts/migrations/neo4j_index_migration.py`
and `qmtl migrate` run.
"""

from qmtl.runtime.graph_migrations.prefixed import UnprefixedGraph, drop_prefixed_graph
from qmtl.runtime.graph_migrations.runner import (
    IndexNotOnline,
    MigrationError,
    MigrationLockLost,
    MigrationLockTimeout,
    MigrationReport,
    MigrationStatus,
    check_at_head,
    migration_status,
    plan,
    run_migrations,
)
from qmtl.runtime.graph_migrations.steps import HEAD_VERSION, MIGRATIONS, GraphNames

__all__ = [
    "HEAD_VERSION",
    "MIGRATIONS",
    "GraphNames",
    "IndexNotOnline",
    "MigrationError",
    "MigrationLockLost",
    "MigrationLockTimeout",
    "MigrationReport",
    "MigrationStatus",
    "UnprefixedGraph",
    "check_at_head",
    "drop_prefixed_graph",
    "migration_status",
    "plan",
    "run_migrations",
]
