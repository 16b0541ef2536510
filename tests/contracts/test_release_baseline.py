"""`make release-schemas` publishes a baseline and `make breaking` holds the work tree to it.

Each test works on a scratch copy of the workspace (tests/contracts/conftest.py) plus the
Makefile. `make -o prereqs` skips the set-up prerequisite, which would otherwise re-check the
shared .venv from the scratch copy; the recipes run are exactly those of CI's `make breaking`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.contracts.scratch import ROOT, Run, edit

QUEUE = "schemas/qmtl/dag/v1/queue.proto"
GATEWAY = "schemas/qmtl/gateway/v1/gateway_service.proto"
SUBMIT_ROUTE = 'post: "/v1/gateway/internal/strategies"\n'


@pytest.fixture
def ws(workspace: Path) -> Path:
    shutil.copy(ROOT / "Makefile", workspace / "Makefile")
    shutil.rmtree(workspace / "schemas" / "releases", ignore_errors=True)
    return workspace


def make(ws: Path, run: Run, *args: str) -> subprocess.CompletedProcess[str]:
    return run("make", "--no-print-directory", "-o", "prereqs", *args, cwd=ws)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def release(ws: Path, run: Run, version: str) -> subprocess.CompletedProcess[str]:
    return make(ws, run, "release-schemas", f"VERSION={version}")


def test_without_a_baseline_breaking_says_so_and_passes(ws: Path, run: Run) -> None:
    result = make(ws, run, "breaking")
    assert result.returncode == 0, output(result)
    assert "NO BASELINE" in result.stdout
    assert "make release-schemas VERSION=1.0.0" in result.stdout


def test_after_a_release_a_deleted_field_fails_and_a_new_field_passes(ws: Path, run: Run) -> None:
    published = release(ws, run, "1.0.0")
    assert published.returncode == 0, output(published)
    baseline = ws / "schemas" / "releases" / "1.0.0.binpb"
    assert baseline.is_file()
    assert (ws / "schemas" / "VERSION").read_text() == "1.0.0\n"
    assert "wrote schemas/releases/1.0.0.binpb" in published.stdout

    clean = make(ws, run, "breaking")
    assert clean.returncode == 0, output(clean)
    assert "against the latest baseline, schemas/releases/1.0.0.binpb" in clean.stdout
    assert "no breaking change against baseline 1.0.0" in clean.stdout

    edit(
        ws / QUEUE,
        "  repeated string tags = 5;\n}",
        "  repeated string tags = 5;\n  // Owner of the queue.\n  string owner = 6;\n}",
    )
    additive = make(ws, run, "breaking")
    assert additive.returncode == 0, output(additive)

    edit(ws / QUEUE, "  // Tags of the emitting node.\n  repeated string tags = 5;\n", "")
    broken = make(ws, run, "breaking")
    assert broken.returncode != 0
    line = re.compile(rf"^{re.escape(QUEUE)}:\d+:\d+: .*\"tags\".* \(FIELD_NO_DELETE\)$", re.M)
    assert line.search(broken.stdout), output(broken)
    assert "1 breaking change(s) against baseline 1.0.0" in broken.stderr
    # The script itself passes buf's exit code for violations through.
    assert run("bash", "scripts/breaking.sh", cwd=ws).returncode == 100


def test_after_a_release_an_http_path_change_fails_with_our_rule(ws: Path, run: Run) -> None:
    assert release(ws, run, "1.0.0").returncode == 0
    edit(ws / GATEWAY, SUBMIT_ROUTE, 'post: "/v1/gateway/internal/strategy"\n')
    result = make(ws, run, "breaking")
    assert result.returncode != 0
    rpc_line = next(
        i
        for i, text in enumerate((ws / GATEWAY).read_text().splitlines(), 1)
        if "rpc SubmitStrategy(" in text
    )
    expected = (
        f'{GATEWAY}:{rpc_line}:3: RPC "SubmitStrategy" on service "GatewayService" no longer '
        'serves HTTP route "POST /v1/gateway/internal/strategies body=*"'
    )
    assert expected in result.stdout, output(result)
    assert result.stdout.rstrip().endswith("(QMTL_HTTP_SAME_ROUTE)"), output(result)


def test_release_refuses_rewrites_older_versions_and_breaks_within_a_major(
    ws: Path, run: Run
) -> None:
    assert release(ws, run, "1.0.0").returncode == 0
    releases = ws / "schemas" / "releases"
    first = (releases / "1.0.0.binpb").read_bytes()

    again = release(ws, run, "1.0.0")
    assert again.returncode != 0
    assert "never rewritten" in again.stderr
    older = release(ws, run, "0.9.0")
    assert older.returncode != 0
    assert "not newer than the latest baseline, 1.0.0" in older.stderr
    malformed = release(ws, run, "1.1")
    assert malformed.returncode != 0
    assert "MAJOR.MINOR.PATCH" in malformed.stderr

    edit(ws / QUEUE, "  // Tags of the emitting node.\n  repeated string tags = 5;\n", "")
    minor = release(ws, run, "1.1.0")
    assert minor.returncode != 0
    assert "(FIELD_NO_DELETE)" in minor.stdout
    assert "the schemas break 1.0.0" in minor.stderr
    assert not (releases / "1.1.0.binpb").exists()
    assert (ws / "schemas" / "VERSION").read_text() == "1.0.0\n"

    major = release(ws, run, "2.0.0")
    assert major.returncode == 0, output(major)
    assert "major version 1 -> 2" in major.stdout
    assert (ws / "schemas" / "VERSION").read_text() == "2.0.0\n"
    assert (releases / "1.0.0.binpb").read_bytes() == first
    assert sorted(p.name for p in releases.iterdir()) == ["1.0.0.binpb", "2.0.0.binpb"]
    # The default comparison moves to the newest baseline.
    latest = make(ws, run, "breaking")
    assert latest.returncode == 0, output(latest)
    assert "no breaking change against baseline 2.0.0" in latest.stdout


def test_against_a_git_ref_runs_our_checks_too(ws: Path, run: Run) -> None:
    git = ("git", "-c", "user.name=qmtl-test", "-c", "user.email=test@qmtl.invalid")
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "base")):
        assert run(*git, *args, cwd=ws).returncode == 0
    submit_access = SUBMIT_ROUTE + '      body: "*"\n    };\n    option (qmtl.api.v1.access) = {\n'
    edit(ws / GATEWAY, submit_access, submit_access + '      required_scopes: "strategies:admin"\n')
    result = make(ws, run, "breaking", "AGAINST=main")
    assert result.returncode != 0
    assert re.search(
        rf"^{re.escape(GATEWAY)}:\d+:3: RPC \"SubmitStrategy\" .* \(QMTL_ACCESS_SAME\)$",
        result.stdout,
        re.M,
    ), output(result)
    assert "1 breaking change(s) against main" in result.stderr
