"""qmtl_codegen.tree_swap: buf's zip archive into the tree, writing only what changed."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from qmtl_codegen import tree_swap

RULES = (
    ["generated/python", "docs/openapi/swagger"],
    ["docs/openapi/*.openapi.json", "docs/schemas/reference.md"],
    ["tests/golden/fixtures"],
)


def archive_bytes(files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        archive.writestr("generated/", b"")  # a folder entry, as some writers add
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run_swap(tmp_path: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> int:
    """The module as scripts/generate.sh runs it, from the repository's root."""
    archive = tmp_path / "out.zip"
    archive.write_bytes(archive_bytes(files))
    monkeypatch.chdir(tmp_path / "repo")
    dirs, patterns, appended = RULES
    rules = ["--replaced-dirs", *dirs, "--replaced-files", *patterns, "--appended-dirs", *appended]
    return tree_swap.main([str(archive), *rules])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(
        root,
        {
            "generated/python/a/v1/a_pb2.py": b"same",
            "generated/python/a/v1/changed_pb2.py": b"old",
            "generated/python/gone/v1/gone_pb2.py": b"deleted schema",
            "generated/python/a/__pycache__/a_pb2.cpython-311.pyc": b"stale bytecode",
            "docs/openapi/README.md": b"hand-written",
            "docs/openapi/old.openapi.json": b"{}",
            "docs/openapi/kept.openapi.json": b"{}",
            "docs/schemas/reference.md": b"ref",
            "docs/schemas/VERSIONING.md": b"hand-written",
            "tests/golden/fixtures/M/full-1.json": b"fixture",
        },
    )
    return root


NEW = {
    "generated/python/a/v1/a_pb2.py": b"same",
    "generated/python/a/v1/changed_pb2.py": b"new",
    "generated/python/b/v1/b_pb2.py": b"added",
    "docs/openapi/swagger/a.swagger.json": b"{}",
    "docs/openapi/kept.openapi.json": b"{}",
    "docs/schemas/reference.md": b"ref",
    "tests/golden/fixtures/M/full-1.json": b"fixture",
    "tests/golden/fixtures/N/full-2.json": b"new fixture",
}


def test_the_tree_ends_up_holding_exactly_the_archive_under_each_rule(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = run_swap(tmp_path, NEW, monkeypatch)

    assert code == 0
    assert tree(repo) == {
        **NEW,
        "docs/openapi/README.md": b"hand-written",
        "docs/schemas/VERSIONING.md": b"hand-written",
    }
    # A folder the archive no longer has anything in is gone, not left empty.
    assert not (repo / "generated/python/gone").exists()
    assert not (repo / "generated/python/a/__pycache__").exists()


def test_only_files_whose_bytes_change_are_written(tmp_path: Path, repo: Path) -> None:
    same = repo / "generated/python/a/v1/a_pb2.py"
    changed = repo / "generated/python/a/v1/changed_pb2.py"
    before = same.stat(), changed.stat()

    archive = tmp_path / "out.zip"
    archive.write_bytes(archive_bytes(NEW))
    written = tree_swap.swap(tree_swap.read_archive(str(archive)), str(repo), *RULES)

    assert "generated/python/a/v1/a_pb2.py" not in written
    assert "generated/python/a/v1/changed_pb2.py" in written
    assert (same.stat().st_ino, same.stat().st_mtime_ns) == (
        before[0].st_ino,
        before[0].st_mtime_ns,
    )
    assert changed.stat().st_ino != before[1].st_ino, "written next to it and renamed over it"
    assert not list(repo.rglob("*.partial"))


def test_a_file_no_rule_covers_is_refused_and_nothing_changes(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(repo)
    code = run_swap(tmp_path, {**NEW, "docs/elsewhere/reference.md": b"x"}, monkeypatch)

    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("generate: FAILED: buf.gen.yaml writes files scripts/generate.sh")
    assert "    docs/elsewhere/reference.md\n" in err
    assert "nothing in the work tree was changed" in err
    assert tree(repo) == before


def test_an_existing_fixture_with_other_bytes_is_refused_and_nothing_changes(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(repo)
    rewritten = {**NEW, "tests/golden/fixtures/M/full-1.json": b"rewritten"}
    code = run_swap(tmp_path, rewritten, monkeypatch)

    assert code == 1
    err = capsys.readouterr().err
    assert "tests/golden/fixtures is append-only, but these would change:" in err
    assert "    M/full-1.json\n" in err
    assert tree(repo) == before


def test_stored_archives_are_sliced_and_others_read_by_zipfile(tmp_path: Path) -> None:
    files = {"a/b.txt": b"hello" * 100, "c.bin": bytes(range(256)), "empty": b""}
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        path = tmp_path / f"{compression}.zip"
        path.write_bytes(archive_bytes(files, compression))
        assert tree_swap.read_archive(str(path)) == files
    assert tree_swap._stored_entries(archive_bytes(files, zipfile.ZIP_DEFLATED)) is None
    assert tree_swap._stored_entries(archive_bytes(files)) == files
