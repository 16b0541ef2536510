"""A consumer installs `qmtl-contracts[client]` alone and calls a running service with it.

A fresh venv gets the two wheels built from this tree and their declared dependencies from
PyPI: no server stack, no gRPC, no backend drivers. The example consumer
(examples/client_consumer.py) then calls a DagManagerService served by uvicorn from the
project's venv, and passes `mypy --strict` against the installed packages' own types.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qmtl.runtime.errors import QmtlError
from tests.client.support import TOKEN, ServerThread, build_apps, node
from tests.client.wheels import ROOT, build_wheels, clean_venv, importable, run

EXAMPLE = ROOT / "examples" / "client_consumer.py"
NOT_FOR_CLIENTS = [
    "redis",
    "aiokafka",
    "neo4j",
    "fastapi",
    "starlette",
    "uvicorn",
    "grpc",
    "qmtl.runtime.workqueue",
    "qmtl.runtime.graph_migrations",
]


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a clean venv holding `qmtl-contracts[client]` and nothing else."""
    wheels = build_wheels(tmp_path_factory.mktemp("wheels"))
    return clean_venv(tmp_path_factory.mktemp("venv") / "v", wheels, "qmtl-contracts[client]")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory away from the repository, so nothing of it is importable."""
    return tmp_path


def test_the_client_extra_brings_no_server_grpc_or_backend_package(
    consumer: Path, outside: Path
) -> None:
    found = importable(consumer, [*NOT_FOR_CLIENTS, "httpx", "qmtl.runtime.client"], outside)

    assert {name for name in NOT_FOR_CLIENTS if found[name]} == set()
    assert found["httpx"]
    assert found["qmtl.runtime.client"]


def test_the_example_consumer_calls_a_running_service(consumer: Path, outside: Path) -> None:
    apps = build_apps()
    apps.handler.nodes = [node(i) for i in range(7)]
    # The first call meets a restarting backend: the client retries it.
    apps.handler.failures["get_node"] = [QmtlError.unavailable("restarting")]
    public, internal = ServerThread(apps.public).start(), ServerThread(apps.internal).start()
    try:
        result = run([consumer, EXAMPLE, public.url, internal.url, TOKEN], cwd=outside)
    finally:
        apps.handler.release.set()
        public.stop()
        internal.stop()

    report = json.loads(result.stdout)
    queues = [f"q-{i:04d}" for i in range(7)]
    assert report["sync"] == {
        "node": "blake3:0001",
        "queues": queues,
        "missing": "E_NOT_FOUND 404 retryable=False",
    }
    assert report["async"] == {
        "node": "blake3:0002",
        "queues": queues,
        "unreachable": "E_UNAVAILABLE 0 retryable=True",
    }
    # 1 failed + 1 retried + 1 missing + 1 async GetNode; pages of 3 then of 2.
    assert apps.handler.count("get_node") == 4
    assert apps.handler.count("list_nodes") == 3 + 4


def test_the_example_consumer_passes_mypy_strict_on_the_installed_types(
    consumer: Path, outside: Path
) -> None:
    run([consumer, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", "mypy"])
    copy = outside / "client_consumer.py"
    copy.write_text(EXAMPLE.read_text())

    result = run(
        [consumer, "-m", "mypy", "--strict", "--no-incremental", copy.name],
        cwd=outside,
    )

    assert "Success: no issues found in 1 source file" in result.stdout, result.stdout
