"""The service images (deploy/images): `scripts/images.sh` builds all three, once per run
(podman's layer cache makes a rebuild of unchanged inputs quick), then each image is checked
from its filesystem: the entrypoint answers `--help` as the image's user, the service package
imports and no other service's does, the user is not root, no compiler is there, and the
labels, health check and size are what deploy/images/README.md says."""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.images.podman import Image, inspect, mounted, podman

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "localhost/qmtl-"
LOCK = "/tmp/qmtl-images.lock"  # scripts/images.sh's
BUDGET_BYTES = 250 * 1000 * 1000
UID = 10001
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "ld", "as", "x86_64-linux-gnu-gcc")
SERVICE_PACKAGES = ("qmtl.services.gateway", "qmtl.services.dag_manager", "qmtl.services.sdk")


@dataclass(frozen=True)
class Spec:
    service: str
    entrypoint: list[str]
    package: str  # the service's own package, with a module that pulls its dependencies in
    module: str
    health_port_env: str  # the env var the /health check reads
    # argv run through the entrypoint, and a line its output must hold
    help_args: list[str]
    help_says: str


SPECS = (
    Spec(
        "gateway",
        ["qmtl", "gateway"],
        "qmtl.services.gateway",
        "qmtl.services.gateway.app",
        "QMTL_GATEWAY_PUBLIC_PORT",
        ["--help"],
        "usage: qmtl gateway",
    ),
    Spec(
        "dagmanager",
        ["qmtl", "dagmanager"],
        "qmtl.services.dag_manager",
        "qmtl.services.dag_manager.app",
        "QMTL_DAGMANAGER_PUBLIC_PORT",
        ["--help"],
        "usage: qmtl dagmanager",
    ),
    Spec(
        "runner",
        ["qmtl", "run"],
        "qmtl.services.sdk",
        "qmtl.services.sdk.runner",
        "QMTL_RUNNER_HEALTH_PORT",
        ["--help"],
        "usage: qmtl run",
    ),
)


@pytest.fixture(scope="module")
def images() -> Iterator[dict[str, Image]]:
    podman()
    # Held from the build to the last check, so no other build on this machine (another
    # checkout's tests, `make images`) retags or removes these images meanwhile.
    with open(LOCK, "w") as lock, ExitStack() as stack:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = subprocess.run(
            ["bash", "scripts/images.sh"],
            cwd=ROOT,
            env={**os.environ, "QMTL_IMAGES_LOCK_HELD": "1"},
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert built.returncode == 0, f"scripts/images.sh failed:\n{built.stdout}\n{built.stderr}"
        yield {
            spec.service: stack.enter_context(mounted(f"{PREFIX}{spec.service}")) for spec in SPECS
        }


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.service)
def test_entrypoint_answers_help_as_the_image_user(images: dict[str, Image], spec: Spec) -> None:
    image = images[spec.service]
    assert image.config["Entrypoint"] == spec.entrypoint
    out = ok(image.run([*spec.entrypoint, *spec.help_args]))
    assert out.startswith(spec.help_says)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.service)
def test_only_its_own_service_package_is_installed(images: dict[str, Image], spec: Spec) -> None:
    image = images[spec.service]
    ok(image.run(["python3", "-c", f"import {spec.module}"]))
    probe = (
        "import importlib.util as u, sys; "
        f"print(' '.join(p for p in {SERVICE_PACKAGES!r} if u.find_spec(p) is not None))"
    )
    assert ok(image.run(["python3", "-c", probe])).split() == [spec.package]


def test_the_dagmanager_image_runs_the_migrations_too(images: dict[str, Image]) -> None:
    # The Kubernetes migration Job runs `qmtl migrate` from this image.
    assert ok(images["dagmanager"].run(["qmtl", "migrate", "--help"])).startswith(
        "usage: qmtl migrate"
    )


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.service)
def test_the_user_is_not_root_and_cannot_change_the_installed_code(
    images: dict[str, Image], spec: Spec
) -> None:
    image = images[spec.service]
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert image.user == f"{UID}:{UID}"
    passwd = (image.root / "etc" / "passwd").read_text().splitlines()
    entries = {int(fields[2]): fields[0] for fields in (line.split(":") for line in passwd)}
    assert entries.get(UID) == "qmtl"
    check = "import os; print(os.getuid(), os.getgid(), os.access('/opt/qmtl/lib', os.W_OK))"
    assert ok(image.run(["python3", "-c", check])).split() == [str(UID), str(UID), "False"]


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.service)
def test_no_compiler_is_in_the_image(images: dict[str, Image], spec: Spec) -> None:
    image = images[spec.service]
    found = image.run(["sh", "-c", f"for c in {' '.join(COMPILERS)}; do command -v $c; done"])
    assert found.stdout.split() == []
    # The image's shell did look: sh itself resolves, so an empty answer is not a broken chroot.
    assert ok(image.run(["sh", "-c", "command -v python3"])).strip() == "/opt/qmtl/bin/python3"


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.service)
def test_labels_name_the_version_revision_and_contracts(
    images: dict[str, Image], spec: Spec
) -> None:
    labels = images[spec.service].config["Labels"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert labels["org.opencontainers.image.title"] == f"qmtl-{spec.service}"
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.revision"].removesuffix("-dirty") == head
    contracts = (ROOT / "schemas" / "VERSION").read_text().strip()
    assert labels["io.qmtl.contracts.version"] == contracts


@contextmanager
def health_server(status: int) -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on a free port of 127.0.0.1 answering every GET with `status`; yields its
    port and the paths asked. A chroot shares this machine's network, so the image's health
    check reaches it."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(status)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.service)
def test_health_check_asks_health_on_its_port(images: dict[str, Image], spec: Spec) -> None:
    image = images[spec.service]
    test = image.healthcheck["Test"]
    assert test[0] == "CMD"
    with health_server(200) as (port, asked):
        ok(image.run(test[1:], env={spec.health_port_env: str(port)}))
    assert asked == ["/health"]
    # A listener answering an error fails the check, as a dead one would.
    with health_server(500) as (port, asked):
        failed = image.run(test[1:], env={spec.health_port_env: str(port)})
    assert failed.returncode != 0
    assert asked == ["/health"]


def test_the_runner_image_has_what_qmtl_run_needs(images: dict[str, Image]) -> None:
    # Imported only once a strategy runs, so `qmtl run --help` does not prove them: the health
    # listener, the Kafka record bus and the Gateway's typed client.
    needs = ("qmtl.cli.run", "qmtl.runtime.serve", "qmtl.runtime.recordbus.kafka",
             "qmtl.gateway.v1.gateway_service_client")  # fmt: skip
    ok(images["runner"].run(["python3", "-c", "import " + ", ".join(needs)]))


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.service)
def test_size_is_within_the_budget(images: dict[str, Image], spec: Spec) -> None:
    assert images[spec.service].size <= BUDGET_BYTES


def test_a_new_revision_with_unchanged_sources_relabels_the_image(
    images: dict[str, Image],
) -> None:
    # podman 4.3's layer cache reused the LABEL layer of an older commit when only the commit
    # had changed (images.sh now copies the revision in as a file before the labels).
    prefix = "localhost/qmtl-revision-test-"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    try:
        for revision in ("revision-one", "revision-two"):
            built = subprocess.run(
                ["bash", "scripts/images.sh", "gateway"],
                cwd=ROOT,
                env={
                    **os.environ,
                    "QMTL_IMAGES_LOCK_HELD": "1",
                    "IMAGE_PREFIX": prefix,
                    "QMTL_IMAGE_REVISION": revision,
                },
                capture_output=True,
                text=True,
                timeout=1800,
            )
            assert built.returncode == 0, f"images.sh failed:\n{built.stdout}\n{built.stderr}"
            labels = inspect(f"{prefix}gateway:latest")["Config"]["Labels"]
            assert labels["org.opencontainers.image.revision"] == revision
    finally:
        for tag in (
            f"{prefix}gateway:latest",
            f"{prefix}gateway:{version}",
            f"{prefix}build:gateway",
        ):
            subprocess.run([podman(), "rmi", tag], capture_output=True, check=False)
    # The images under test keep the checkout's revision.
    head = images["gateway"].config["Labels"]["org.opencontainers.image.revision"]
    assert head not in ("revision-one", "revision-two")
