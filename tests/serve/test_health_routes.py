"""/health and /ready on both HTTP listeners: anonymous, GET only, 200/503, and the public
listener's body without components, instance, versions or backend addresses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from qmtl.common.v1 import health_pb2
from qmtl.runtime import codec
from qmtl.runtime.health import HealthReporter
from qmtl.runtime.serve import Served
from tests.serve.toy_service import BINDING, FREE_PORTS, VERIFIER, Counter


class Switch:
    """A backend check the test turns on and off."""

    def __init__(self) -> None:
        self.up = True

    async def __call__(self) -> None:
        if not self.up:
            raise ConnectionRefusedError("neo4j at bolt://10.1.2.3:7687 refused the connection")


class Running:
    def __init__(self, served: Served, health: HealthReporter, neo4j: Switch) -> None:
        self.served, self.health, self.neo4j = served, health, neo4j

    def url(self, listener: str, path: str) -> str:
        return f"http://127.0.0.1:{getattr(self.served, f'{listener}_port')}{path}"


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    health = HealthReporter(
        "toy", instance_id="host-7:8081/nonce", version="9.9.9", contract_version="1", max_age_s=0
    )
    neo4j = Switch()
    health.add_check("graph_store", neo4j, adapter="neo4j")
    served = Served(Counter(), VERIFIER, BINDING, config=FREE_PORTS, health=health)
    task = asyncio.create_task(served.run())
    await served.wait_started()
    yield Running(served, health, neo4j)
    served.stop()
    await task


async def test_health_is_200_while_serving_even_before_boot_and_with_a_backend_down(
    running: Running,
) -> None:
    running.neo4j.up = False
    async with httpx.AsyncClient() as http:
        for listener in ("public", "internal"):
            answer = await http.get(running.url(listener, "/health"))
            assert answer.status_code == 200
            assert answer.headers["content-type"] == codec.JSON
            assert answer.json() == {
                "service": "toy",
                "state": "HEALTH_STATE_UNSPECIFIED",
                "ready": False,
            }


async def test_ready_is_503_until_booted_then_200_then_503_when_a_backend_goes(
    running: Running,
) -> None:
    async with httpx.AsyncClient() as http:
        url = running.url("internal", "/ready")
        assert (await http.get(url)).status_code == 503  # not booted yet
        running.health.mark_booted()
        ready = await http.get(url)
        assert ready.status_code == 200
        assert ready.json()["ready"] is True
        running.neo4j.up = False
        down = await http.get(url)
    assert down.status_code == 503
    body = down.json()
    assert (body["state"], body["ready"]) == ("HEALTH_STATE_DOWN", False)
    [component] = body["components"]
    assert (component["name"], component["adapter"], component["state"]) == (
        "graph_store",
        "neo4j",
        "HEALTH_STATE_DOWN",
    )
    assert "refused" in component["detail"]
    assert body["instanceId"] == "host-7:8081/nonce"


async def test_the_public_ready_body_names_no_backend_instance_or_version(
    running: Running,
) -> None:
    running.health.mark_booted()
    running.neo4j.up = False
    async with httpx.AsyncClient() as http:
        public = await http.get(running.url("public", "/ready"))
        binary = await http.get(running.url("public", "/ready"), headers={"accept": codec.PROTOBUF})
    assert public.status_code == 503
    assert public.json() == {"service": "toy", "state": "HEALTH_STATE_DOWN", "ready": False}
    for leak in ("10.1.2.3", "neo4j", "host-7", "9.9.9", "graph_store"):
        assert leak not in public.text
    assert binary.headers["content-type"] == codec.PROTOBUF
    assert health_pb2.ServiceHealth.FromString(binary.content) == health_pb2.ServiceHealth(
        service="toy", state=health_pb2.HEALTH_STATE_DOWN
    )


async def test_health_routes_take_no_writes_and_no_token(running: Running) -> None:
    async with httpx.AsyncClient() as http:
        for listener in ("public", "internal"):
            for path in ("/health", "/ready"):
                refused = await http.post(
                    running.url(listener, path), headers={"accept": codec.JSON}
                )
                assert refused.status_code == 405
                assert refused.json()["code"] == "E_METHOD_NOT_ALLOWED"
                head = await http.head(running.url(listener, "/health"))
                assert head.status_code == 200


async def test_without_a_reporter_there_are_no_health_routes() -> None:
    served = Served(Counter(), VERIFIER, BINDING, config=FREE_PORTS)
    task = asyncio.create_task(served.run())
    await served.wait_started()
    try:
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://127.0.0.1:{served.public_port}/ready")
        assert answer.status_code == 404
    finally:
        served.stop()
        await task
