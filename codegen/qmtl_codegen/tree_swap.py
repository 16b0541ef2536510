"""Puts the output of `buf generate` (a zip archive, or a folder) into the work tree: generate.sh.

    python -m qmtl_codegen.tree_swap ARCHIVE|FOLDER --announce TEXT
        --replaced-dirs DIR... --replaced-files PATTERN... --appended-dirs DIR...

Every archived file must belong to a rule, and an appended (append-only) file that exists must
keep its bytes; otherwise nothing is changed and the problem is reported as
`generate: FAILED: ...`, exit status 1. Then the tree is made equal to the archive:

- replaced folders and files (glob patterns, `*` within one folder) hold exactly the archived
  files: what the archive lacks is deleted (so the output of a deleted schema element does not
  linger), and emptied folders with it;
- appended folders only gain the archived files they lack.

A file whose bytes are already what the archive holds is left alone, so a run that changes one
schema writes only the outputs that changed: creating a file cost this machine's filesystem
more than generating it (creating some 300 files took longer than every generator together).
Each file that changes is written next to its place and renamed over it.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import glob
import os
import shutil
import struct
import sys
from collections.abc import Iterable


class SwapError(Exception):
    """The archive cannot be swapped in; the work tree was not changed."""


def _under(name: str, folders: Iterable[str]) -> str | None:
    return next((folder for folder in folders if name.startswith(folder + "/")), None)


def check(
    archive: dict[str, bytes],
    root: str,
    replaced_dirs: list[str],
    replaced_files: list[str],
    appended_dirs: list[str],
) -> None:
    """SwapError when an archived file belongs to no rule or would change an appended file."""
    # A rule's glob is matched as the shell's [[ == ]] would: `*` also crosses folders.
    unknown = [
        name
        for name in archive
        if _under(name, [*replaced_dirs, *appended_dirs]) is None
        and not any(fnmatch.fnmatchcase(name, pattern) for pattern in replaced_files)
    ]
    if unknown:
        listed = "\n".join(f"    {name}" for name in sorted(unknown))
        raise SwapError(
            "buf.gen.yaml writes files scripts/generate.sh does not know how to swap in:\n"
            f"{listed}\n"
            "    add their path to scripts/generate.sh; nothing in the work tree was changed"
        )
    for folder in appended_dirs:
        changed = [
            name.removeprefix(folder + "/")
            for name, data in sorted(archive.items())
            if name.startswith(folder + "/")
            and _differs(os.path.join(root, name), data, missing=False)
        ]
        if changed:
            listed = "\n".join(f"    {name}" for name in changed)
            raise SwapError(
                f"{folder} is append-only, but these would change:\n{listed}\n"
                "    nothing in the work tree was changed"
            )


def _differs(path: str, data: bytes, *, missing: bool) -> bool:
    """Whether `path` does not hold `data`; `missing` is the answer when it does not exist."""
    try:
        with open(path, "rb") as file:
            return file.read() != data
    except FileNotFoundError:
        return missing
    except IsADirectoryError:
        return True


def swap(
    archive: dict[str, bytes],
    root: str,
    replaced_dirs: list[str],
    replaced_files: list[str],
    appended_dirs: list[str],
) -> list[str]:
    """Makes the tree hold the archive as the module docstring says; the paths written."""
    stale: list[str] = []
    for folder in replaced_dirs:
        for current, _, files in os.walk(os.path.join(root, folder)):
            relative = os.path.relpath(current, root).replace(os.sep, "/")
            stale += (f"{relative}/{f}" for f in files if f"{relative}/{f}" not in archive)
    for pattern in replaced_files:
        stale += (found for found in glob.glob(pattern, root_dir=root) if found not in archive)
    for name in stale:
        os.unlink(os.path.join(root, name))
    for folder in replaced_dirs:
        _remove_empty_folders(os.path.join(root, folder))
    written = []
    for name, data in sorted(archive.items()):
        path = os.path.join(root, name)
        if _differs(path, data, missing=True):
            _write(path, data)
            written.append(name)
    return written


def _write(path: str, data: bytes) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    folder, base = os.path.split(path)
    partial = os.path.join(folder, f".{base}.partial")
    with open(partial, "wb") as file:
        file.write(data)
    os.replace(partial, path)


def _remove_empty_folders(top: str) -> None:
    """Removes every folder under `top` (and `top`) that holds nothing, deepest first."""
    for current, _, _ in os.walk(top, topdown=False):
        with contextlib.suppress(OSError):  # not empty
            os.rmdir(current)


# The zip records read (APPNOTE.TXT): the end of the central directory, a central directory
# entry and a local header, each after its 4-byte signature.
_END = struct.Struct("<4s4x2xHII2x")  # entries, directory size, directory offset
_ENTRY = struct.Struct("<4s6xH8xII HHH8xI")  # method, compressed/full size, lengths, offset
_LOCAL = struct.Struct("<26xHH")  # name and extra field lengths
_END_SIGNATURE, _ENTRY_SIGNATURE = b"PK\x05\x06", b"PK\x01\x02"
_STORED = 0
_ZIP64_SIZE = 0xFFFFFFFF  # the size is in a zip64 record instead


def read_staged(path: str) -> dict[str, bytes]:
    """Every file buf wrote, by name: from its zip archive, or from a folder it wrote into."""
    if not os.path.isdir(path):
        return read_archive(path)
    found: dict[str, bytes] = {}
    for current, _, files in os.walk(path):
        relative = os.path.relpath(current, path).replace(os.sep, "/")
        for name in files:
            with open(os.path.join(current, name), "rb") as file:
                found[name if relative == "." else f"{relative}/{name}"] = file.read()
    return found


def read_archive(path: str) -> dict[str, bytes]:
    """Every file of the archive by name.

    buf writes the archive uncompressed, without comment or zip64 records: its entries are
    sliced straight out of the archive's bytes (zipfile's per-entry reads cost more than the
    rest of the swap). Any other archive is read with zipfile.
    """
    with open(path, "rb") as file:
        raw = file.read()
    found = _stored_entries(raw)
    if found is not None:
        return found
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        return {e.filename: archive.read(e) for e in archive.infolist() if not e.is_dir()}


def _stored_entries(raw: bytes) -> dict[str, bytes] | None:
    """The archive's files when every entry is stored as is; None for anything else."""
    if len(raw) < _END.size:
        return None
    signature, count, size, offset = _END.unpack_from(raw, len(raw) - _END.size)
    if signature != _END_SIGNATURE or offset + size > len(raw) or count == 0xFFFF:
        return None
    found: dict[str, bytes] = {}
    at = offset
    for _ in range(count):
        signature, method, packed, full, name_length, extra_length, comment_length, local = (
            _ENTRY.unpack_from(raw, at)
        )
        stored = method == _STORED and packed == full and full != _ZIP64_SIZE
        if signature != _ENTRY_SIGNATURE or not stored:
            return None
        name = raw[at + _ENTRY.size : at + _ENTRY.size + name_length].decode()
        at += _ENTRY.size + name_length + extra_length + comment_length
        if name.endswith("/"):
            continue
        local_name, local_extra = _LOCAL.unpack_from(raw, local)
        start = local + _LOCAL.size + local_name + local_extra
        found[name] = raw[start : start + full]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", help="buf's zip archive, or the folder it generated into")
    parser.add_argument("--announce", default="", help="printed once the checks pass")
    parser.add_argument("--replaced-dirs", nargs="*", default=[])
    parser.add_argument("--replaced-files", nargs="*", default=[])
    parser.add_argument("--appended-dirs", nargs="*", default=[])
    args = parser.parse_args(argv)
    root = os.getcwd()
    archive = read_staged(args.archive)
    rules = (args.replaced_dirs, args.replaced_files, args.appended_dirs)
    try:
        check(archive, root, *rules)
    except SwapError as exc:
        print(f"generate: FAILED: {exc}", file=sys.stderr)
        return 1
    if args.announce:
        print(args.announce, flush=True)
    swap(archive, root, *rules)
    return 0


if __name__ == "__main__":
    sys.exit(main())
