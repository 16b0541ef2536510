"""`make cross-check`: TypeScript (protobuf-es) reads every golden fixture byte for byte.

scripts/cross_check.sh generates JavaScript from the schemas with buf.gen.ts.yaml and runs
tools/crosscheck/check.mjs over a fixtures folder. A corrupted fixture that still decodes
passes a round trip in any one encoding, so these tests corrupt a scratch copy and expect the
binary/JSON comparison to name the fixture and the field that changed.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.client.support import TOKEN, ServerThread, build_apps

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/golden/fixtures"
CROSS_CHECK = ROOT / "scripts/cross_check.sh"
GEN = ROOT / "tools/crosscheck/gen"
EXAMPLE = ROOT / "tools/crosscheck/example_client.mjs"
# A cold run installs the npm packages first.
TIMEOUT_S = 600


def cross_check(fixtures: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = ["bash", str(CROSS_CHECK)]
    if fixtures is not None:
        args += ["--fixtures", str(fixtures)]
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )


def first(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert found, f"no {pattern} under {folder}: the fixtures this test corrupts have moved"
    return found[0]


@pytest.fixture(scope="module")
def real_run() -> subprocess.CompletedProcess[str]:
    """The cross-check of the real fixtures; it also (re)generates tools/crosscheck/gen/."""
    return cross_check()


@contextmanager
def generated_code() -> Iterator[Path]:
    """tools/crosscheck/gen/, held so that no cross-check regenerates it meanwhile."""
    with (ROOT / "buf.gen.ts.yaml").open() as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the lock scripts/cross_check.sh takes
        yield GEN


def test_every_real_fixture_reads_back_identically(
    real_run: subprocess.CompletedProcess[str],
) -> None:
    files = [p for p in FIXTURES.glob("*/*") if p.suffix in (".binpb", ".json")]
    types = {p.parent.name for p in files}
    assert len(types) > 50, "too few fixtures found: run `make generate`"

    result = real_run

    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stderr
    assert f"OK: {len(files)} fixtures of {len(types)} message types" in result.stdout


def test_corrupted_fixtures_fail_naming_the_fixture_and_field(tmp_path: Path) -> None:
    scratch = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, scratch)

    # A changed string value: the .binpb still decodes and re-encodes to itself.
    node_bin = first(scratch / "qmtl.dag.v1.Node", "full-*.binpb")
    data = node_bin.read_bytes()
    assert data.count(b"node_id-1") == 1
    node_bin.write_bytes(data.replace(b"node_id-1", b"node_id-7"))

    # A changed value inside a map: Struct's `fields`, whose entries Python sorts by key.
    error_bin = first(scratch / "qmtl.common.v1.ErrorDetail", "full-*.binpb")
    data = error_bin.read_bytes()
    assert data.count(b"sample") == 1
    error_bin.write_bytes(data.replace(b"sample", b"samplf"))

    # A changed value in a JSON fixture: still valid proto3 JSON, stable through a round trip.
    dag_json = first(scratch / "qmtl.dag.v1.Dag", "full-*.json")
    dag = json.loads(dag_json.read_text())
    assert dag["meta"]["buildVersion"] == "build_version-1"
    dag["meta"]["buildVersion"] = "build_version-7"
    dag_json.write_text(json.dumps(dag, indent=2, sort_keys=True) + "\n")

    # A truncated .binpb does not decode at all.
    page_bin = first(scratch / "qmtl.common.v1.PageInfo", "full-*.binpb")
    page_bin.write_bytes(page_bin.read_bytes()[:-1])

    # Fixtures of a message the schemas do not have.
    stray = scratch / "qmtl.nosuch.v1.Thing"
    stray.mkdir()
    shutil.copy(page_bin.with_suffix(".json"), stray / "full-000000000000.json")

    result = cross_check(scratch)

    assert result.returncode == 1, result.stdout + result.stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("crosscheck: FAIL")]
    named = {
        re.sub(r"^crosscheck: FAIL (\S+?):.*", r"\1", line).removeprefix(f"{scratch}/")
        for line in failures
    }

    def rel(path: Path) -> str:
        return str(path.relative_to(scratch))

    assert named == {
        rel(node_bin),
        rel(node_bin.with_suffix(".json")),
        rel(dag_json),
        rel(dag_json.with_suffix(".binpb")),
        rel(error_bin),
        rel(error_bin.with_suffix(".json")),
        rel(page_bin),
        rel(page_bin.with_suffix(".json")),
        "qmtl.nosuch.v1.Thing",
    }, result.stderr
    text = "\n".join(failures)
    # The binary change is found as a JSON field and as a byte of the binary encoding.
    changed = '"node_id-1", the .binpb read by protobuf-es has "node_id-7"'
    assert f"$.nodeId: the .json has {changed}" in text
    assert f"{rel(node_bin.with_suffix('.json'))}: json -> binary" in text
    assert "field node_id: first difference at byte" in text
    assert '$.details.name: the .json has "sample"' in text
    assert "field details.fields[2].value.string_value: first difference at byte" in text
    # The JSON change likewise, by the field path inside the nested message.
    assert '$.meta.buildVersion: the .json has "build_version-7"' in text
    assert "field meta.build_version: first difference at byte" in text
    assert f"{rel(page_bin)}: binary -> binary:" in text
    assert "no message qmtl.nosuch.v1.Thing in the generated TypeScript" in text
    assert "difference(s) in" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fixtures"], "--fixtures needs a folder"),
        (["--fixtures", "/nonexistent/fixtures"], "/nonexistent/fixtures is not a folder"),
        (["--bogus"], "unknown argument '--bogus'"),
    ],
)
def test_bad_arguments_are_refused(args: list[str], message: str) -> None:
    result = subprocess.run(
        ["bash", str(CROSS_CHECK), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_the_example_typescript_client_calls_a_python_service(
    real_run: subprocess.CompletedProcess[str],
) -> None:
    assert real_run.returncode == 0, real_run.stdout + real_run.stderr
    apps = build_apps()
    public, internal = ServerThread(apps.public).start(), ServerThread(apps.internal).start()
    try:
        with generated_code():
            result = subprocess.run(
                ["node", str(EXAMPLE), public.url, internal.url, TOKEN],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
    finally:
        public.stop()
        internal.stop()

    assert result.returncode == 0, result.stderr
    # Both encodings of the reply, decoded by protobuf-es; the error body likewise.
    assert json.loads(result.stdout) == {
        "json": {"node": {"queue": "blake3:0001"}},
        "protobuf": {"node": {"queue": "blake3:0002"}},
        "missing": {"status": 404, "code": "E_NOT_FOUND", "message": "no such node"},
        "gc": {},
        "serverContracts": (ROOT / "schemas/VERSION").read_text().strip(),
    }
    # The body protobuf-es encoded is the request the Python handler received.
    gc_requests = [request for rpc, request in apps.handler.calls if rpc == "trigger_gc"]
    assert [(r.dry_run, r.batch_size) for r in gc_requests] == [(True, 7)]
    assert [r.node_id for rpc, r in apps.handler.calls if rpc == "get_node"] == [
        "blake3:0001",
        "blake3:0002",
        "missing",
    ]
