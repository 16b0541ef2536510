"""`make release-schemas VERSION=x.y.z`: publish the work tree's schemas as a baseline.

    python -m qmtl_codegen.release_schemas VERSION   (run from the repository root)

Refuses a version that is not MAJOR.MINOR.PATCH, not newer than the latest baseline, or already
published (baselines are never rewritten). Within the same major version the schemas must pass
scripts/breaking.sh against the latest baseline first. Then builds `buf build schemas` twice,
insists on identical bytes (a baseline must be reproducible from its commit), writes
schemas/releases/<version>.binpb without overwriting anything, and records the version in
schemas/VERSION.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from qmtl_codegen.releases import (
    RELEASES_DIR,
    VERSION_FILE,
    ReleaseError,
    format_version,
    latest_release,
    load_image,
    parse_version,
)

BUF = Path(".tools/bin/buf")
BREAKING = Path("scripts/breaking.sh")


def _build(root: Path, out: Path) -> bytes:
    # Imports and source info stay in: the checks resolve options through the imports and
    # print locations from source info.
    result = subprocess.run(
        [str(root / BUF), "build", "schemas", "-o", str(out)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ReleaseError(f"buf build schemas failed (exit {result.returncode}):\n{result.stderr}")
    return out.read_bytes()


def release(version_text: str, root: Path = Path(".")) -> Path:
    """Publishes the baseline `version_text`; returns its path. Prints each step."""
    root = root.resolve()
    version = parse_version(version_text)
    name = format_version(version)
    releases = root / RELEASES_DIR
    target = releases / f"{name}.binpb"
    if target.exists():
        raise ReleaseError(
            f"{RELEASES_DIR / target.name} already exists: a published baseline is never rewritten"
        )
    latest = latest_release(releases)
    if latest is not None and version <= latest.version:
        raise ReleaseError(f"{name} is not newer than the latest baseline, {latest.name}")

    if latest is None:
        print(f"release-schemas: {name} is the first baseline; nothing to check it against")
    elif version[0] > latest.version[0]:
        print(
            f"release-schemas: major version {latest.version[0]} -> {version[0]}: "
            f"breaking changes against {latest.name} are allowed, not checked"
        )
    else:
        print(f"release-schemas: checking the schemas against {latest.name} (scripts/breaking.sh)")
        checked = subprocess.run(["bash", str(BREAKING)], cwd=root, check=False)
        if checked.returncode != 0:
            raise ReleaseError(
                f"the schemas break {latest.name} (above): release them as "
                f"{version[0] + 1}.0.0 with the changes in a new version package, or undo them"
            )

    releases.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=releases, prefix=".release-") as scratch:
        first, second = Path(scratch) / "first.binpb", Path(scratch) / "second.binpb"
        image = _build(root, first)
        if _build(root, second) != image:
            raise ReleaseError("two builds of schemas/ gave different bytes; refusing a baseline")
        files = len(load_image(first).file)
        try:
            # A hard link never replaces an existing name, unlike a rename.
            os.link(first, target)
        except FileExistsError:
            raise ReleaseError(
                f"{RELEASES_DIR / target.name} appeared meanwhile; it is left as it is"
            ) from None
    (root / VERSION_FILE).write_text(f"{name}\n", encoding="utf-8")
    digest = hashlib.sha256(image).hexdigest()
    print(f"release-schemas: wrote {RELEASES_DIR / target.name} ({files} files, imports and")
    print(f"release-schemas:   source info included; {len(image)} bytes; sha256 {digest})")
    print(f"release-schemas: wrote {VERSION_FILE} = {name}")
    print(
        f"release-schemas: commit both with the regenerated output; `make breaking` now "
        f"compares against {name}"
    )
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].strip():
        print("usage: make release-schemas VERSION=MAJOR.MINOR.PATCH", file=sys.stderr)
        return 2
    try:
        release(args[0])
    except ReleaseError as exc:
        print(f"release-schemas: refused: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
