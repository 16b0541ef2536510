"""A per-call timeout bounds the call, is sent as `qmtl-timeout-ms`, and ends in E_TIMEOUT."""

from __future__ import annotations

import time

import httpx
import pytest

from qmtl.dagmanager.v1.dag_manager_service_client import AsyncDagManagerServiceClient
from qmtl.dagmanager.v1.node_messages_pb2 import ListNodesRequest
from qmtl.dagmanager.v1.queue_messages_pb2 import GetQueuesByTagRequest
from qmtl.runtime.client import TIMEOUT_HEADER, QmtlError
from tests.client.support import TOKEN, Apps, Recorder, ServedApps, asgi_client, sync_client

HANGS = GetQueuesByTagRequest(tags=["t"], interval=60)


async def test_async_call_past_its_timeout_is_e_timeout_with_status_0(
    apps: Apps, recorder: Recorder
) -> None:
    client = asgi_client(apps, retry=recorder.policy())
    started = time.monotonic()

    with pytest.raises(QmtlError) as raised:
        await client.get_queues_by_tag(HANGS, timeout=0.2)

    assert (raised.value.status, raised.value.wire_code) == (0, "E_TIMEOUT")
    assert time.monotonic() - started < 5
    assert recorder.waits == []  # the deadline has passed: nothing is left to retry in


def test_sync_call_past_its_timeout_is_e_timeout_over_uvicorn(served: ServedApps) -> None:
    started = time.monotonic()

    with sync_client(served) as client, pytest.raises(QmtlError) as raised:
        client.get_queues_by_tag(HANGS, timeout=0.3)

    # The server holds the same deadline (the `qmtl-timeout-ms` header) and answers 504
    # E_TIMEOUT when it passes: over a real socket that answer and the client's own timeout
    # race, and either way the call ends promptly in E_TIMEOUT.
    assert raised.value.wire_code == "E_TIMEOUT"
    assert raised.value.status in (0, 504)
    assert time.monotonic() - started < 5
    assert served.apps.handler.count("get_queues_by_tag") == 1


async def test_the_deadline_travels_as_a_header(apps: Apps) -> None:
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.headers[TIMEOUT_HEADER])

    public = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=apps.public),
        base_url="http://p",
        event_hooks={"request": [record]},
    )
    client = AsyncDagManagerServiceClient(public, token=TOKEN, timeout=7)

    await client.list_nodes(ListNodesRequest())
    await client.list_nodes(ListNodesRequest(), timeout=1.5)
    await client.list_nodes(ListNodesRequest(), timeout=1e12)  # more than 12 digits of ms

    assert 6000 < int(seen[0]) <= 7000
    assert 1000 < int(seen[1]) <= 1500
    assert seen[2] == "999999999999"


def test_a_non_positive_client_timeout_is_a_typed_error() -> None:
    with pytest.raises(QmtlError, match="timeout must be positive"):
        AsyncDagManagerServiceClient("http://127.0.0.1:1", timeout=0)
