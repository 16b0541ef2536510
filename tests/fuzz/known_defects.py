"""Defects this suite found that are not fixed yet, each tied to the inputs that show it.

Empty: every defect the suite has found is fixed, and its crash files under
tests/fuzz/crashes/ replay as ordinary regression tests. The mechanism stays for the next
defect that cannot be fixed at once (docs/operations/fuzzing.md, "A crash becomes a
regression test"):

- CRASHES maps each crash file showing it (`<target>/known-<what>`) to the reason; the replay
  runs those files as xfail(strict), so the day the fix lands they pass, the strict xfail
  fails, and the entry (with its branch in `known`) must go: a fixed defect cannot stay listed.
- `known` recognises the defect's exception, so that the hypothesis tests and
  `make fuzz FUZZ_SKIP_KNOWN=1` pass over an input that shows it (`tolerated`, `shows_known`)
  and keep searching for others; they never hide any other failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

CRASHES: dict[str, str] = {}


def known(exc: BaseException) -> str | None:
    """The listed defect `exc` shows, or None if it is not one of them (none is listed)."""
    return None


@contextmanager
def tolerated() -> Iterator[None]:
    """Swallows an exception that shows a listed defect; anything else propagates."""
    try:
        yield
    except Exception as exc:
        if known(exc) is None:
            raise


def shows_known(call: Callable[[], object]) -> bool:
    """Whether `call` fails with a listed defect (other failures propagate)."""
    try:
        call()
    except Exception as exc:
        if known(exc) is None:
            raise
        return True
    return False
