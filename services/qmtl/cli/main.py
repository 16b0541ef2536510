"""Entry point of the `qmtl` console script (`[project.scripts]` in pyproject.toml)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from qmtl.cli.registry import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qmtl", description="QMTL NextGen command line.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands():
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status
