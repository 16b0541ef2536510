"""The subcommands of `qmtl`, and what a subcommand is."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Command:
    """One `qmtl <name>` subcommand.

    `configure` adds its arguments; `run` returns the exit status. Modules keep heavy imports
    inside `run` so `qmtl --help` stays fast and needs no server drivers.
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# One line per subcommand: the module that defines its COMMAND.
COMMAND_MODULES: tuple[str, ...] = (
    "qmtl.cli.node_id",
    "qmtl.cli.migrate",
    "qmtl.cli.dagmanager",
    "qmtl.cli.gateway",
    "qmtl.cli.alerts",
    "qmtl.cli.demo",
    "qmtl.cli.run",
)


def commands() -> list[Command]:
    loaded = []
    for module_name in COMMAND_MODULES:
        command = importlib.import_module(module_name).COMMAND
        if not isinstance(command, Command):
            raise TypeError(f"{module_name}.COMMAND is not a qmtl.cli.registry.Command")
        loaded.append(command)
    return loaded
