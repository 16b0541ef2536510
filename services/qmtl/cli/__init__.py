"""The `qmtl` console script: one argparse command with subcommands (docs/operations/node-id.md).

A subcommand is a module exposing `COMMAND` (a `qmtl.cli.registry.Command`); adding one is one
line in `qmtl.cli.registry.COMMAND_MODULES`.
"""

from __future__ import annotations

from qmtl.cli.main import main

__all__ = ["main"]
