"""The Redis started by scripts/services/redis.sh is real, reachable and persistent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from qmtl.runtime.endpoints import ServiceEndpoints


@pytest.fixture
async def client(endpoints: ServiceEndpoints) -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(endpoints.redis_url, socket_connect_timeout=3)
    try:
        await conn.ping()
    except redis.ConnectionError as exc:
        pytest.fail(
            f"Redis is not reachable at {endpoints.redis_url} ({exc}); start it with "
            "`make services-up` or `scripts/services/redis.sh start`"
        )
    yield conn
    await conn.aclose()


async def test_ping(client: redis.Redis) -> None:
    assert await client.ping() is True


async def test_set_then_get_round_trips_bytes(client: redis.Redis) -> None:
    key = f"qmtl:smoke:{uuid.uuid4()}"
    value = uuid.uuid4().bytes
    await client.set(key, value, ex=60)
    assert await client.get(key) == value
    await client.delete(key)
    assert await client.get(key) is None


async def test_append_only_file_is_on_and_written(client: redis.Redis) -> None:
    config = await client.config_get("appendonly")
    assert config["appendonly"] == "yes"
    fsync = (await client.config_get("appendfsync"))["appendfsync"]
    assert fsync in {"everysec", "always"}

    data_dir = Path((await client.config_get("dir"))["dir"])
    manifest = data_dir / "appendonlydir" / "appendonly.aof.manifest"
    assert manifest.is_file(), f"no AOF manifest under {data_dir}"
    incr_files = [line.split()[1] for line in manifest.read_text().splitlines() if "type i" in line]
    assert incr_files, "the AOF manifest lists no incremental file"
    assert (data_dir / "appendonlydir" / incr_files[-1]).is_file()
