"""The options of the server commands (`qmtl dagmanager`, `qmtl gateway`) as data.

Each option is a flag with a `QMTL_*` environment default, so a process can be configured by
either; `--help` shows both and the default. One table of them all is in the README
("Running the services"); tests/serve/test_service_options_documented.py checks that it
lists every option.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qmtl.runtime.endpoints import ServiceEndpoints

EXIT_CONFIG = 2


@dataclass(frozen=True, slots=True)
class Option:
    flag: str  # "--public-port"
    env: str  # "QMTL_DAGMANAGER_PUBLIC_PORT"
    default: str  # as text: what the README and --help show
    help: str
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    secret: bool = False  # never echoed (help shows whether it is set, not its value)

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port 0-65535 (0: any free port), got {value}")
    return value


def seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"seconds >= 0, got {text}")
    return value


def _endpoints() -> ServiceEndpoints:
    return ServiceEndpoints.from_env()


def listener_options(prefix: str, public: int, internal: int) -> list[Option]:
    """Hosts and ports of the two HTTP listeners of the service whose env prefix is `prefix`."""
    return [
        Option("--public-host", f"{prefix}_PUBLIC_HOST", "127.0.0.1", "public listener host"),
        Option(
            "--public-port",
            f"{prefix}_PUBLIC_PORT",
            str(public),
            "public listener port (GET only; 0: any free port)",
            port,
        ),
        Option(
            "--internal-host",
            f"{prefix}_INTERNAL_HOST",
            "127.0.0.1",
            "internal listener host (every rpc: keep it off public networks)",
        ),
        Option(
            "--internal-port",
            f"{prefix}_INTERNAL_PORT",
            str(internal),
            "internal listener port (0: any free port)",
            port,
        ),
    ]


def common_options(prefix: str) -> list[Option]:
    """The options every server command has."""
    return [
        Option(
            "--backend",
            f"{prefix}_BACKEND",
            "memory",
            "memory: everything in this process; real: the QMTL_* servers",
            choices=("memory", "real"),
        ),
        Option(
            "--profile",
            "QMTL_PROFILE",
            "development",
            "production refuses the memory backend and a missing token secret",
            choices=("development", "production"),
        ),
        Option(
            "--token-secret",
            "QMTL_TOKEN_SECRET",
            "",
            "HMAC secret the service tokens are signed with (docs/operations/auth.md)",
            secret=True,
        ),
        Option("--token-key-id", "QMTL_TOKEN_KEY_ID", "", "key id of that secret"),
        Option(
            "--instance-id",
            f"{prefix}_INSTANCE_ID",
            "",
            "stable id of this instance (clean-shutdown marker, events); "
            "default hostname:<internal port>",
        ),
        Option(
            "--grace",
            "QMTL_SHUTDOWN_GRACE_SECONDS",
            "10",
            "seconds calls in flight get to finish after SIGTERM",
            seconds,
        ),
        Option(
            "--max-body-bytes",
            "QMTL_HTTP_MAX_BODY_BYTES",
            "16777216",
            "request body limit (HTTP 413, gRPC RESOURCE_EXHAUSTED)",
            int,
        ),
        Option(
            "--kafka-bootstrap",
            "QMTL_KAFKA_BOOTSTRAP",
            _endpoints().kafka_bootstrap,
            "Kafka bootstrap servers (real backend)",
        ),
        Option(
            "--log-level",
            "QMTL_LOG_LEVEL",
            "INFO",
            "logging level",
            choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        ),
    ]


def add_options(
    parser: argparse.ArgumentParser,
    options: Sequence[Option],
    env: Mapping[str, str] | None = None,
) -> None:
    env = os.environ if env is None else env
    for option in options:
        given = env.get(option.env)
        default = option.default if given is None or given == "" else given
        shown = ("set" if given else "unset") if option.secret else (option.default or '""')
        parser.add_argument(
            option.flag,
            dest=option.dest,
            default=default,
            type=option.type,
            choices=option.choices,
            metavar=option.dest.upper() if option.choices is None else None,
            help=f"{option.help} (env {option.env}; default {shown})",
        )


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def config_error(command: str, message: object) -> int:
    """One line on stderr and the exit status of a configuration the process refuses."""
    import sys

    print(f"qmtl {command}: error: {message}", file=sys.stderr)
    return EXIT_CONFIG
