"""The production profile starts only on a Redis that keeps accepted jobs; development starts
anyway but says what is at risk.

The refusals run against a private Redis whose settings each test changes with CONFIG SET,
so the shared server's configuration is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.workqueue import (
    DurabilityError,
    InMemoryWorkQueue,
    QueueProfile,
    RedisWorkQueue,
    WorkQueueError,
    inspect_persistence,
    open_work_queue,
)
from tests.polling import eventually

from .workqueue_support import PrivateRedis, connect, unique

SAFE_CONFIG = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "save": "3600 1",
    "maxmemory-policy": "noeviction",
}


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("durability"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def server(private_server: PrivateRedis) -> AsyncIterator[PrivateRedis]:
    yield private_server
    await configure(private_server, SAFE_CONFIG)


async def configure(server: PrivateRedis, settings: dict[str, str]) -> None:
    client = await connect(server.url)
    try:
        for name, value in settings.items():
            await client.config_set(name, value)

        # Turning AOF on starts a rewrite of the initial AOF, during which Redis refuses to
        # shut down; let it finish so the server is stable for the next test and for stop.
        async def aof_settled() -> bool:
            info = await client.info("persistence")
            return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]

        await eventually(aof_settled, what="Redis to finish rewriting its AOF")
    finally:
        await client.aclose()


async def test_the_shared_redis_is_fit_for_production(endpoints: ServiceEndpoints) -> None:
    queue = await open_work_queue(
        QueueProfile.PRODUCTION, name=unique("durability"), redis_url=endpoints.redis_url
    )
    try:
        assert isinstance(queue, RedisWorkQueue)
        report = await inspect_persistence(queue.client)
        assert report.appendonly
        assert report.problems() == []
    finally:
        await queue.aclose()


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        pytest.param({"appendonly": "no", "save": ""}, "persistence is off", id="nothing"),
        pytest.param({"appendonly": "no"}, "only RDB snapshots are on", id="rdb-only"),
        pytest.param({"appendfsync": "no"}, "appendfsync is 'no'", id="fsync-no"),
        pytest.param(
            {"maxmemory-policy": "allkeys-lru"}, "maxmemory-policy is 'allkeys-lru'", id="eviction"
        ),
    ],
)
async def test_production_refuses_a_redis_that_would_lose_jobs(
    server: PrivateRedis, settings: dict[str, str], reason: str
) -> None:
    await configure(server, settings)

    with pytest.raises(DurabilityError) as raised:
        await open_work_queue(QueueProfile.PRODUCTION, name="refused", redis_url=server.url)

    assert reason in raised.value.message
    assert raised.value.retryable is False


async def test_development_starts_on_such_a_redis_but_warns(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    await configure(server, {"appendonly": "no", "save": ""})

    with caplog.at_level(logging.WARNING, logger="qmtl.runtime.workqueue"):
        queue = await open_work_queue(QueueProfile.DEVELOPMENT, name="dev", redis_url=server.url)
    await queue.aclose()

    assert isinstance(queue, RedisWorkQueue)
    assert "persistence is off" in caplog.text


async def test_the_embedded_profile_needs_no_server() -> None:
    queue = await open_work_queue(QueueProfile.EMBEDDED, name="demo")

    assert isinstance(queue, InMemoryWorkQueue)


async def test_production_without_a_redis_url_refuses_to_start() -> None:
    with pytest.raises(WorkQueueError, match="needs a Redis URL"):
        await open_work_queue(QueueProfile.PRODUCTION, name="nowhere")
