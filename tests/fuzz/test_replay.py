"""Every committed fuzz input, replayed through its target: the corpus and every crash found.

tests/fuzz/corpus/<target>/ is the seed corpus `make fuzz` starts from (tests/fuzz/seed.py
writes it from the golden fixtures); tests/fuzz/crashes/<target>/ is where `make fuzz` writes
each input that broke a property, so a crash becomes a regression test by being committed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz import known_defects
from tests.fuzz.targets import TARGETS

HERE = Path(__file__).resolve().parent
ROOTS = (HERE / "corpus", HERE / "crashes")


def _inputs() -> list[object]:
    found: list[object] = []
    for root in ROOTS:
        for path in sorted(root.glob("*/*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            key = f"{path.parent.name}/{path.name}"
            reason = known_defects.CRASHES.get(key) if root.name == "crashes" else None
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            found.append(pytest.param(path, id=f"{root.name}/{key}", marks=marks))
    return found


INPUTS = _inputs()


@pytest.mark.parametrize("path", INPUTS)
def test_committed_input_holds_its_property(path: Path) -> None:
    TARGETS[path.parent.name](path.read_bytes())


def test_every_input_folder_names_a_target() -> None:
    folders = {path.name for root in ROOTS if root.is_dir() for path in root.iterdir()}
    assert folders <= set(TARGETS), f"unknown targets: {sorted(folders - set(TARGETS))}"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_target_has_a_seed_corpus(target: str) -> None:
    assert any((HERE / "corpus" / target).glob("seed-*")), "run python -m tests.fuzz.seed"


def test_known_defects_name_committed_crashes() -> None:
    for key in known_defects.CRASHES:
        assert (HERE / "crashes" / key).is_file(), key
