"""Fixtures shared by every test: where the real servers are."""

from __future__ import annotations

import pytest

from qmtl.runtime.endpoints import ServiceEndpoints


@pytest.fixture(scope="session")
def endpoints() -> ServiceEndpoints:
    return ServiceEndpoints.from_env()
