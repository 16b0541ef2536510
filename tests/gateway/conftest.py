"""The Gateway's test environment (gateway_support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.gateway.gateway_support import GatewayEnv, gateway_env


@pytest.fixture
async def env() -> AsyncIterator[GatewayEnv]:
    async for made in gateway_env():
        yield made
