"""The published schema baselines: `schemas/releases/<major>.<minor>.<patch>.binpb`.

Each baseline is a buf image (`buf build schemas -o <version>.binpb`, imports and source info
included) written once by `make release-schemas VERSION=x.y.z` and never rewritten. A buf image
is wire-compatible with `google.protobuf.FileDescriptorSet` (buf's own extension fields are
skipped as unknown), so every tool here reads a baseline as a descriptor set. The breaking
checks compare the work tree with the latest baseline; the changelog walks consecutive ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2

RELEASES_DIR = Path("schemas/releases")
# The contracts version of the work tree: one line, `major.minor.patch`.
VERSION_FILE = Path("schemas/VERSION")
_VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")


class ReleaseError(ValueError):
    """A baseline or version string that is not what the release layout promises."""


@dataclass(frozen=True, order=True)
class Release:
    """One published baseline; orders by version."""

    version: tuple[int, int, int]
    path: Path

    @property
    def name(self) -> str:
        return format_version(self.version)


def parse_version(text: str) -> tuple[int, int, int]:
    """`"1.2.3"` -> `(1, 2, 3)`; anything else is a ReleaseError naming the text."""
    match = _VERSION.match(text.strip())
    if match is None:
        raise ReleaseError(f"{text.strip()!r} is not a version of the form MAJOR.MINOR.PATCH")
    major, minor, patch = (int(part) for part in match.groups())
    return (major, minor, patch)


def format_version(version: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in version)


def list_releases(directory: Path = RELEASES_DIR) -> list[Release]:
    """Every baseline in `directory`, oldest first; a stray `.binpb` name is a ReleaseError."""
    if not directory.is_dir():
        return []
    releases = []
    for path in directory.glob("*.binpb"):
        try:
            version = parse_version(path.name.removesuffix(".binpb"))
        except ReleaseError as exc:
            raise ReleaseError(f"{path}: not a release baseline name ({exc})") from None
        releases.append(Release(version, path))
    return sorted(releases)


def latest_release(directory: Path = RELEASES_DIR) -> Release | None:
    releases = list_releases(directory)
    return releases[-1] if releases else None


def load_image(path: Path) -> descriptor_pb2.FileDescriptorSet:
    """A baseline's files (imports included) as a FileDescriptorSet."""
    image = descriptor_pb2.FileDescriptorSet()
    try:
        image.ParseFromString(path.read_bytes())
    except Exception as exc:  # DecodeError, OSError: both mean the baseline is unusable
        raise ReleaseError(f"{path}: not a readable buf image ({exc})") from exc
    return image


def read_current_version(path: Path = VERSION_FILE) -> tuple[int, int, int]:
    """The work tree's contracts version from `schemas/VERSION`."""
    try:
        return parse_version(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReleaseError(f"{path}: cannot read the contracts version ({exc})") from exc
