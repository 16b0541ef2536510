"""`make generate` (scripts/generate.sh) swaps its output in only when every plugin succeeded.

Each test runs the real Makefile target in a scratch git repository holding the schemas, the
scripts and a first generated tree; `-o prereqs` keeps make from running scripts/setup.sh,
which would otherwise reinstall into the shared .venv the scratch copy links to.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.contracts.scratch import ROOT, Run, edit

QUEUE = "schemas/qmtl/dag/v1/queue.proto"
# Every path `make generate` writes (the Makefile's GENERATED) plus the hand-written files that
# share their directories and must survive a run.
OUTPUTS = ("generated", "docs/openapi", "docs/schemas", "tests/golden/fixtures")
GIT = ("git", "-c", "user.name=qmtl-test", "-c", "user.email=test@qmtl.invalid")


def make_generate(repo: Path, run: Run) -> tuple[int, str]:
    result = run("make", "--no-print-directory", "-o", "prereqs", "generate", cwd=repo)
    return result.returncode, result.stdout + result.stderr


def git_status(repo: Path, run: Run) -> str:
    result = run("git", "status", "--porcelain", "--untracked-files=all", cwd=repo)
    assert result.returncode == 0, result.stderr
    return result.stdout


def snapshot(repo: Path) -> dict[str, bytes]:
    """Every file under the output paths, by path relative to the repository."""
    files: dict[str, bytes] = {}
    for top in OUTPUTS:
        for path in sorted((repo / top).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(repo))] = path.read_bytes()
    return files


@pytest.fixture
def repo(workspace: Path, run: Run) -> Path:
    """The scratch workspace plus the Makefile and a generated tree of its own, committed."""
    shutil.copy(ROOT / "Makefile", workspace / "Makefile")
    (workspace / "docs" / "openapi").mkdir(parents=True)
    (workspace / "docs" / "schemas").mkdir(parents=True)
    for hand_written in ("docs/openapi/README.md", "docs/schemas/VERSIONING.md"):
        shutil.copy(ROOT / hand_written, workspace / hand_written)
    shutil.copytree(ROOT / "tests/golden/fixtures", workspace / "tests/golden/fixtures")
    code, output = make_generate(workspace, run)
    assert code == 0, output
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "base")):
        result = run(*GIT, *args, cwd=workspace)
        assert result.returncode == 0, result.stderr
    return workspace


def test_failing_plugin_is_named_and_leaves_every_output_untouched(repo: Path, run: Run) -> None:
    before = snapshot(repo)
    assert "generated/python/pyproject.toml" in before
    good_template = (repo / "buf.gen.yaml").read_text()
    edit(
        repo / "buf.gen.yaml",
        "generated/python qmtl_codegen.openapi version_file=schemas/VERSION layout=package",
        "generated/python qmtl_codegen.openapi version_file=schemas/VERSION layout=bogus",
    )

    code, output = make_generate(repo, run)

    assert code != 0
    assert "generate: FAILED: plugin qmtl_codegen.openapi failed:" in output, output
    assert "layout must be one of docs, package, not bogus" in output
    assert "nothing in the work tree was changed" in output
    # buf cancels the other plugins; those lines must not read as further failures.
    assert "context canceled" not in output
    assert snapshot(repo) == before
    assert git_status(repo, run) == " M buf.gen.yaml\n"

    (repo / "buf.gen.yaml").write_text(good_template)
    for _ in range(2):
        code, output = make_generate(repo, run)
        assert code == 0, output
        assert git_status(repo, run) == ""
    assert snapshot(repo) == before


def test_schema_the_http_plugins_reject_fails_without_touching_the_tree(
    repo: Path, run: Run
) -> None:
    before = snapshot(repo)
    edit(
        repo / "schemas/qmtl/gateway/v1/gateway_service.proto",
        'post: "/v1/gateway/internal/strategies"\n      body: "*"',
        'post: "/v1/gateway/internal/strategies"\n      body: "no_such_field"',
    )

    code, output = make_generate(repo, run)

    assert code != 0
    # Several plugins reject this; whichever buf reports first is named.
    assert "generate: FAILED: plugin qmtl_codegen." in output, output
    assert "no_such_field" in output
    assert snapshot(repo) == before


def test_output_of_a_deleted_message_is_removed_but_its_fixtures_stay(repo: Path, run: Run) -> None:
    schema = repo / QUEUE
    original = schema.read_text()
    with schema.open("a") as out:
        out.write("\n// QueueOwner names who runs a queue.\nmessage QueueOwner {\n")
        out.write("  // Owner name.\n  string name = 1;\n}\n")
    code, output = make_generate(repo, run)
    assert code == 0, output
    json_schema = repo / "generated/jsonschema/qmtl.dag.v1.QueueOwner.schema.json"
    module = repo / "generated/python/qmtl/dag/v1/queue_pb2.py"
    assert json_schema.is_file()
    assert b"QueueOwner" in module.read_bytes()
    fixtures = sorted((repo / "tests/golden/fixtures/qmtl.dag.v1.QueueOwner").iterdir())
    assert fixtures

    schema.write_text(original)
    code, output = make_generate(repo, run)
    assert code == 0, output

    assert not json_schema.exists()
    assert b"QueueOwner" not in module.read_bytes()
    # Fixtures are append-only: the deleted message's fixtures are the only difference left.
    left = {line[3:] for line in git_status(repo, run).splitlines()}
    assert left == {str(path.relative_to(repo)) for path in fixtures}


def test_output_path_unknown_to_the_swap_is_refused(repo: Path, run: Run) -> None:
    before = snapshot(repo)
    with (repo / "buf.gen.yaml").open("a") as template:
        template.write("  - local: [.venv/bin/python, -m, qmtl_codegen.reference]\n")
        template.write("    out: docs/elsewhere\n    strategy: all\n")

    code, output = make_generate(repo, run)

    assert code != 0
    assert "does not know how to swap in" in output
    assert "docs/elsewhere/reference.md" in output
    assert not (repo / "docs/elsewhere").exists()
    assert snapshot(repo) == before
