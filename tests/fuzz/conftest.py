"""Registers the fuzz suite's hypothesis profile, `qmtl-fuzz` (see tests/fuzz/profile.py).

Tests apply it explicitly (`@settings(FUZZ)`) rather than loading it globally, so that the
other suites' hypothesis tests (schemathesis) keep their own settings.
"""

from __future__ import annotations

from tests.fuzz import profile

__all__ = ["profile"]
