#!/usr/bin/env python3
"""Applies the Neo4j schema migrations of the global DAG (docs/operations/neo4j.md).

Usage: neo4j_index_migration.py [--status | --dry-run] [--uri URI] [--user U] [--password P]
The same command is `qmtl migrate`; the logic lives in qmtl.runtime.graph_migrations.
"""

from __future__ import annotations

import sys

from qmtl.runtime.graph_migrations.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="neo4j_index_migration.py"))
