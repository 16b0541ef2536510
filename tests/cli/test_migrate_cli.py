"""`qmtl migrate` is the migration script under the one console script: same arguments, exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qmtl.runtime.graph_migrations.runner import plan
from qmtl.runtime.graph_migrations.steps import GraphNames

QMTL = Path(sys.executable).with_name("qmtl")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(QMTL), *args], capture_output=True, text=True, timeout=60)


def test_migrate_is_listed_in_the_top_level_help() -> None:
    done = run("--help")

    assert done.returncode == 0
    assert "migrate" in done.stdout


def test_migrate_help_shows_the_scripts_options() -> None:
    done = run("migrate", "--help")

    assert done.returncode == 0
    for option in ("--status", "--dry-run", "--uri", "--user", "--password", "--wait"):
        assert option in done.stdout


def test_dry_run_prints_the_plan_and_needs_no_server() -> None:
    # An address nothing listens on: a dry run must not connect.
    done = run("migrate", "--dry-run", "--uri", "bolt://127.0.0.1:9")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{s};" for s in plan(GraphNames(""))]


def test_unreachable_neo4j_is_one_line_and_exit_1() -> None:
    done = run("migrate", "--status", "--uri", "bolt://127.0.0.1:9")

    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: ")


def test_bad_arguments_exit_2() -> None:
    done = run("migrate", "--status", "--dry-run")

    assert done.returncode == 2
