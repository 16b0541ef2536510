"""The built images, looked at without running a container (this sandbox cannot run one):
`podman image inspect` for the configuration, `podman image mount` + `chroot` to run a program
from the image's filesystem as the image's user, with the image's environment."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def podman() -> str:
    found = shutil.which("podman")
    if found is None:
        pytest.fail("podman is not installed: `make setup` installs it (scripts/setup.sh)")
    return found


@dataclass(frozen=True)
class Image:
    name: str
    config: dict[str, Any]  # the image's Config: User, Env, Entrypoint, Labels
    healthcheck: dict[str, Any]  # HEALTHCHECK: Test (["NONE"] or ["CMD", argv...]), Interval...
    size: int  # bytes, as `podman images` counts them
    root: Path  # where `podman image mount` put its filesystem

    @property
    def env(self) -> dict[str, str]:
        pairs = (entry.split("=", 1) for entry in self.config.get("Env") or [])
        return {key: value for key, value in pairs}

    @property
    def user(self) -> str:
        return str(self.config.get("User") or "")

    def run(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Runs `argv` inside the image's filesystem as the image's User, with only the image's
        environment (plus `env`), as `podman run -e` would. The network is the host's."""
        chroot = shutil.which("chroot")
        assert chroot is not None, "chroot (coreutils) is missing on this machine"
        return subprocess.run(
            [chroot, f"--userspec={self.user}", str(self.root), *argv],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def inspect(name: str) -> dict[str, Any]:
    out = subprocess.run(
        [podman(), "image", "inspect", name], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"podman image inspect {name}: {out.stderr.strip()}"
    (info,) = json.loads(out.stdout)
    assert isinstance(info, dict)
    return info


@contextmanager
def mounted(name: str) -> Iterator[Image]:
    out = subprocess.run(
        [podman(), "image", "mount", name], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"podman image mount {name}: {out.stderr.strip()}"
    info = inspect(name)
    try:
        yield Image(
            name,
            info["Config"],
            info.get("Healthcheck") or {},
            int(info["Size"]),
            Path(out.stdout.strip()),
        )
    finally:
        subprocess.run([podman(), "image", "unmount", name], capture_output=True, check=False)
