"""`qmtl gateway` as a real subprocess: `--backend memory` (the DAG Manager embedded) starts in
seconds and takes a submission to COMPLETED with its queue map; `--backend real` against the
shared Redis and Kafka and a `qmtl dagmanager` process over gRPC does the same; health routes,
access rules and a SIGKILL reported as a crash by the next boot."""

from __future__ import annotations

import asyncio
import signal
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qmtl.dag.v1 import strategy_pb2
from qmtl.events.v1 import event_pb2
from qmtl.gateway.v1 import strategy_messages_pb2
from qmtl.runtime import codec, nodeid
from qmtl.runtime.auth import issue_token
from qmtl.runtime.callbacks.signing import verify
from qmtl.runtime.endpoints import ServiceEndpoints
from tests.dag_manager.dag_builders import DagBuilder, chain
from tests.polling import eventually
from tests.serve.service_process import QMTL, REPO, ServiceProcess

SECRET = "gateway-process-test-secret"
FREE = ("--public-port", "0", "--internal-port", "0")
STARTS_WITHIN_S = 10.0
COMPLETED = strategy_pb2.STRATEGY_STATE_COMPLETED


def bearer(*scopes: str) -> dict[str, str]:
    return {"authorization": f"Bearer {issue_token(SECRET.encode(), 'test:sdk', scopes)}"}


def submission(tag: str, nodes: int = 3) -> strategy_messages_pb2.SubmitStrategyRequest:
    builder = DagBuilder()
    chain(builder, nodes, tags=(tag,))
    dag = builder.dag()
    request = strategy_messages_pb2.SubmitStrategyRequest(
        name="process test", node_ids_crc32=nodeid.node_ids_crc32(n.node_id for n in dag.nodes)
    )
    request.dag.CopyFrom(dag)
    return request


def gateway(*args: str) -> ServiceProcess:
    return ServiceProcess("gateway", *FREE, *args, env={"QMTL_TOKEN_SECRET": SECRET})


@pytest.fixture
async def processes() -> AsyncIterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for process in started:
        await process.close()


async def start(processes: list[ServiceProcess], process: ServiceProcess) -> ServiceProcess:
    processes.append(process)
    await process.start()
    await process.wait_ready()
    return process


async def submit_and_complete(
    http: httpx.AsyncClient,
    process: ServiceProcess,
    request: strategy_messages_pb2.SubmitStrategyRequest,
) -> strategy_messages_pb2.GetStrategyStatusResponse:
    submitted = await http.post(
        process.url("internal", "/v1/gateway/internal/strategies"),
        content=request.SerializeToString(),
        headers={
            **bearer("strategies:submit"),
            "content-type": codec.PROTOBUF,
            "accept": codec.PROTOBUF,
        },
    )
    assert submitted.status_code in (200, 202), submitted.text
    strategy_id = strategy_messages_pb2.SubmitStrategyResponse.FromString(
        submitted.content
    ).strategy_id
    status = strategy_messages_pb2.GetStrategyStatusResponse()

    async def completed() -> bool:
        answer = await http.get(
            process.url("public", f"/v1/gateway/strategies/{strategy_id}/status"),
            headers={**bearer("strategies:read"), "accept": codec.PROTOBUF},
        )
        assert answer.status_code == 200, answer.text
        status.CopyFrom(strategy_messages_pb2.GetStrategyStatusResponse.FromString(answer.content))
        return status.state == COMPLETED

    await eventually(completed, what=f"strategy {strategy_id} COMPLETED", within=30,
                     watch=[process])  # fmt: skip
    return status


async def test_memory_backend_starts_in_seconds_and_completes_a_submission(
    processes: list[ServiceProcess],
) -> None:
    process = await start(processes, gateway("--backend", "memory"))
    print(f"qmtl gateway --backend memory: ready {process.ready_after_s:.2f} s after spawn")
    assert process.ready_after_s < STARTS_WITHIN_S
    request = submission("btc")
    async with httpx.AsyncClient() as http:
        for listener in ("public", "internal"):
            assert (await http.get(process.url(listener, "/health"))).status_code == 200
            ready = await http.get(process.url(listener, "/ready"))
            assert ready.status_code == 200, ready.text
        detail = (await http.get(process.url("internal", "/ready"))).json()
        adapters = {c["name"]: (c["adapter"], c["state"]) for c in detail["components"]}
        assert adapters == {
            "strategy_store": ("memory", "HEALTH_STATE_OK"),
            "work_queue": ("memory", "HEALTH_STATE_OK"),
            "event_bus": ("memory", "HEALTH_STATE_OK"),
            "dag_manager": ("in-process", "HEALTH_STATE_OK"),
        }
        health = await http.get(process.url("public", "/v1/gateway/health"))
        assert health.status_code == 200
        assert health.json() == {
            "health": {"service": "gateway", "state": "HEALTH_STATE_OK", "ready": True}
        }

        status = await submit_and_complete(http, process, request)
        assert sorted(status.queue_map.queues) == sorted(n.node_id for n in request.dag.nodes)
        assert all(q.queue for q in status.queue_map.queues.values())

        refused = await http.post(
            process.url("public", "/v1/gateway/strategies"),
            content=request.SerializeToString(),
            headers={**bearer("strategies:submit"), "content-type": codec.PROTOBUF,
                     "accept": codec.JSON},
        )  # fmt: skip
        assert refused.status_code == 405
        assert refused.json()["code"] == "E_METHOD_NOT_ALLOWED"
        anonymous = await http.post(
            process.url("internal", "/v1/gateway/internal/strategies"),
            content=request.SerializeToString(),
            headers={"content-type": codec.PROTOBUF, "accept": codec.JSON},
        )
        assert anonymous.status_code == 401
    assert await process.stop() == 0


async def test_production_profile_refuses_the_memory_backend() -> None:
    proc = await asyncio.create_subprocess_exec(
        str(QMTL), "gateway", "--profile", "production", "--backend", "memory", *FREE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"QMTL_TOKEN_SECRET": SECRET}, cwd=REPO,
    )  # fmt: skip
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"production profile refuses --backend memory" in err
    assert b"Traceback" not in err


# -- the real backend: shared Redis and Kafka, a DAG Manager process over gRPC -----------------


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """The store's key prefix; the queue is named after it (`qmtl:wq:{<name>}:` keys)."""
    unique = uuid.uuid4().hex[:10]
    yield f"test:gwproc:{unique}:"
    client = redis.Redis.from_url(ServiceEndpoints.from_env().redis_url)
    try:
        for pattern in (f"test:gwproc:{unique}:*", f"qmtl:wq:{{testgwproc{unique}}}:*"):
            keys = [key async for key in client.scan_iter(match=pattern)]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


async def test_real_backend_completes_through_a_dagmanager_process_and_reports_a_crash(
    processes: list[ServiceProcess], redis_prefix: str
) -> None:
    dag_manager = await start(
        processes,
        ServiceProcess(
            "dagmanager", "--public-port", "0", "--internal-port", "0", "--grpc-port", "0",
            "--backend", "memory", env={"QMTL_TOKEN_SECRET": SECRET},
        ),
    )  # fmt: skip
    queue = "testgwproc" + redis_prefix.split(":")[2]
    instance = f"test-gw-{uuid.uuid4().hex[:8]}"
    args = (
        "--backend", "real", "--redis-prefix", redis_prefix, "--queue-name", queue,
        "--dag-manager", dag_manager.grpc_target, "--instance-id", instance,
    )  # fmt: skip
    first = await start(processes, gateway(*args))
    assert not first.crash_detected
    async with httpx.AsyncClient() as http:
        status = await submit_and_complete(http, first, submission(f"t{uuid.uuid4().hex[:8]}"))
        assert len(status.queue_map.queues) == 3
        detail = (await http.get(first.url("internal", "/ready"))).json()
        assert {c["name"]: c["adapter"] for c in detail["components"]} == {
            "strategy_store": "redis",
            "work_queue": "redis",
            "event_bus": "kafka",
            "dag_manager": "grpc",
        }
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    second = await start(processes, gateway(*args))
    assert second.crash_detected
    assert await second.stop() == 0
    third = await start(processes, gateway(*args))
    assert not third.crash_detected
    assert await third.stop() == 0
    assert await dag_manager.stop() == 0


async def test_redis_down_at_start_keeps_serving_with_ready_503_naming_it(
    processes: list[ServiceProcess],
) -> None:
    process = gateway(
        "--backend", "real", "--redis-url", "redis://127.0.0.1:1/0", "--dag-manager", "127.0.0.1:1"
    )  # fmt: skip
    processes.append(process)
    await process.start()
    async with httpx.AsyncClient() as http:

        async def store_down() -> bool:
            answer = await http.get(process.url("internal", "/ready"))
            components = {c["name"]: c for c in answer.json()["components"]}
            store = components.get("strategy_store", {})
            return (
                answer.status_code == 503
                and store.get("state") == "HEALTH_STATE_DOWN"
                and store.get("adapter") == "redis"
            )

        await eventually(store_down, what="strategy_store DOWN", within=30, watch=[process])
        assert (await http.get(process.url("public", "/health"))).status_code == 200
        public = await http.get(process.url("public", "/ready"))
        assert public.json() == {"service": "gateway", "state": "HEALTH_STATE_DOWN", "ready": False}
        booting = await http.post(
            process.url("internal", "/v1/gateway/internal/strategies"),
            content=submission("eth").SerializeToString(),
            headers={**bearer("strategies:submit"), "content-type": codec.PROTOBUF,
                     "accept": codec.JSON},
        )  # fmt: skip
        assert booting.status_code == 503
        assert booting.json()["code"] == "E_UNAVAILABLE"
    process.check_alive()
    assert await process.stop() == 0


async def test_production_profile_refuses_a_redis_without_aof_with_exit_1(
    processes: list[ServiceProcess], tmp_path: Path
) -> None:
    from tests.integration.test_workqueue_unresponsive import SleepyRedis

    volatile = SleepyRedis(tmp_path)  # a private redis-server: no AOF, no snapshots
    try:
        await volatile.wait_ready()
        process = gateway(
            "--profile", "production", "--backend", "real", "--redis-url", volatile.url,
            "--dag-manager", "127.0.0.1:1",
        )  # fmt: skip
        processes.append(process)
        await process.start()
        async with asyncio.timeout(60):
            status = await process.proc.wait()
    finally:
        volatile.stop()
    assert status == 1
    logs = process.logs()
    assert "qmtl gateway: error:" in logs
    assert "appendonly" in logs
    assert "Traceback" not in logs


class CallbackReceiver:
    """A callback URL on this test's loop: records each signed POST it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

        async def hook(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))

    async def __aenter__(self) -> CallbackReceiver:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await self.task


async def test_a_completed_strategy_is_called_back_signed_with_the_callback_secret(
    processes: list[ServiceProcess],
) -> None:
    secret = b"callback-secret-of-at-least-32-bytes!"
    process = ServiceProcess(
        "gateway", *FREE, "--callback-key-id", "cb1",
        env={"QMTL_TOKEN_SECRET": SECRET, "QMTL_CALLBACK_SECRET": secret.decode()},
    )  # fmt: skip
    await start(processes, process)
    async with CallbackReceiver() as receiver, httpx.AsyncClient() as http:
        request = submission("sol")
        request.callback_url = receiver.url
        status = await submit_and_complete(http, process, request)

        async def called_back() -> bool:
            return bool(receiver.received)

        await eventually(called_back, what="the callback POST", within=30, watch=[process])
    headers, body = receiver.received[0]
    assert verify(headers, body, {"cb1": secret}).key_id == "cb1"
    event = event_pb2.Event.FromString(body)
    assert event.strategy_state_changed.strategy_id == status.strategy_id
    assert event.strategy_state_changed.to_state == COMPLETED
    assert await process.stop() == 0
