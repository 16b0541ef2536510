"""The README's "Running the services" table lists every option of `qmtl dagmanager` and
`qmtl gateway` with its environment variable, and every option reads that variable."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from qmtl.cli import dagmanager, gateway
from qmtl.cli.service_options import Option, add_options

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS = {"dagmanager": dagmanager.options, "gateway": gateway.options}


def section() -> str:
    text = README.read_text()
    start = text.index("## Running the services")
    return text[start : text.index("\n## ", start + 1)]


def table_rows() -> dict[str, str]:
    rows = {}
    for line in section().splitlines():
        match = re.match(r"\| `(--[a-z0-9-]+)` \|", line)
        if match:
            rows[match.group(1)] = line
    return rows


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_readme_table_names_every_flag_and_its_environment_variable(command: str) -> None:
    rows = table_rows()
    for option in COMMANDS[command]():
        assert option.flag in rows, f"README lacks {option.flag} of qmtl {command}"
        assert f"`{option.env}`" in rows[option.flag], (option.flag, option.env)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_takes_its_default_from_its_environment_variable(command: str) -> None:
    options: list[Option] = COMMANDS[command]()
    values = {o.env: ("1234" if o.type is not str else f"from-env-{o.dest}") for o in options}
    for option in options:
        if option.choices is not None:
            values[option.env] = option.choices[-1]
    parser = argparse.ArgumentParser()
    add_options(parser, options, env=values)
    parsed = vars(parser.parse_args([]))
    for option in options:
        assert str(parsed[option.dest]) in (values[option.env], f"{values[option.env]}.0")
    flags = {o.flag for o in options}
    assert len(flags) == len(options)  # no flag defined twice
