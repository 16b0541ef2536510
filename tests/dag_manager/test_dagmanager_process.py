"""`qmtl dagmanager` as a real subprocess: start-up time, health, access rules, gRPC, body limit,
clean and unclean stops, and with `--backend real` the shared Neo4j and Kafka (topics made by
a Diff are reused after a restart; a SIGKILL is reported as a crash by the next boot; Neo4j
down at start leaves the process serving with /ready 503)."""

from __future__ import annotations

import asyncio
import signal
import socket
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from google.protobuf import json_format

from qmtl.dagmanager.v1 import dag_manager_service_pb2_grpc
from qmtl.dagmanager.v1.diff_messages_pb2 import DiffRequest, DiffResponse
from qmtl.dagmanager.v1.node_messages_pb2 import GetNodeResponse
from qmtl.events.v1 import event_pb2
from qmtl.runtime import codec
from qmtl.runtime.auth import issue_token
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import OPS_EVENTS, Delivery
from qmtl.runtime.graph_migrations import GraphNames
from tests.contract.graphstore_neo4j import drop_graph, open_driver
from tests.dag_manager.dag_builders import DagBuilder, chain
from tests.polling import eventually
from tests.serve.service_process import QMTL, REPO, ServiceProcess

SECRET = "dagmanager-process-test-secret"
FREE = ("--public-port", "0", "--internal-port", "0", "--grpc-port", "0")
STARTS_WITHIN_S = 10.0


def token(*scopes: str) -> str:
    return issue_token(SECRET.encode(), "service:gateway", scopes)


def bearer(*scopes: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token(*scopes)}"}


def dag_request(tag: str, strategy_id: str = "s-1") -> DiffRequest:
    builder = DagBuilder()
    chain(builder, 3, tags=(tag,))
    return builder.request(strategy_id)


async def grpc_diff(process: ServiceProcess, request: DiffRequest) -> DiffResponse:
    async with grpc.aio.insecure_channel(process.grpc_target) as channel:
        stub = dag_manager_service_pb2_grpc.DagManagerServiceStub(channel)
        reply: DiffResponse = await stub.Diff(
            request, metadata=(("authorization", f"Bearer {token('dag:diff')}"),), timeout=30
        )
        return reply


def dagmanager(*args: str, env: dict[str, str] | None = None) -> ServiceProcess:
    return ServiceProcess(
        "dagmanager", *FREE, *args, env={"QMTL_TOKEN_SECRET": SECRET, **(env or {})}
    )


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


# -- the embedded (memory) backend ------------------------------------------------------------


async def test_memory_backend_starts_in_seconds_and_serves_health_and_rpcs(
    processes: list[ServiceProcess],
) -> None:
    process = await start(processes, dagmanager("--backend", "memory"))
    print(f"qmtl dagmanager --backend memory: ready {process.ready_after_s:.2f} s after spawn")
    assert process.ready_after_s < STARTS_WITHIN_S
    async with httpx.AsyncClient() as http:
        for listener in ("public", "internal"):
            assert (await http.get(process.url(listener, "/health"))).status_code == 200
            ready = await http.get(process.url(listener, "/ready"))
            assert ready.status_code == 200, ready.text
            assert ready.json()["ready"] is True
        detail = (await http.get(process.url("internal", "/ready"))).json()
        assert {c["name"]: c["adapter"] for c in detail["components"]} == {
            "graph_store": "memory",
            "topic_admin": "memory",
            "event_bus": "memory",
        }

        # GetStatus allows anonymous callers; the public view has no internal fields.
        status = await http.get(process.url("public", "/v1/dag-manager/status"))
        assert status.status_code == 200, status.text
        assert status.json() == {
            "health": {"service": "dag-manager", "state": "HEALTH_STATE_OK", "ready": True}
        }

        reply = await grpc_diff(process, dag_request("btc"))
        assert len(reply.result.new_node_ids) == 3
        node_id = reply.result.new_node_ids[0]

        node_path = f"/v1/dag-manager/nodes/{node_id}"
        anonymous = await http.get(process.url("public", node_path))
        assert anonymous.status_code == 401
        node = await http.get(
            process.url("public", node_path),
            headers={**bearer("dag:read"), "accept": codec.PROTOBUF},
        )
        assert node.status_code == 200, node.text
        stored = GetNodeResponse.FromString(node.content).node
        assert stored.queue == reply.result.queue_map.queues[node_id].queue

        posted = await http.post(
            process.url("public", "/v1/dag-manager/status"), headers={"accept": codec.JSON}
        )
        assert posted.status_code == 405
        assert posted.json()["code"] == "E_METHOD_NOT_ALLOWED"
        no_token = await http.post(
            process.url("internal", "/v1/dag-manager/internal/diff"),
            content=dag_request("eth").SerializeToString(),
            headers={"content-type": codec.PROTOBUF, "accept": codec.JSON},
        )
        assert no_token.status_code == 401
        assert no_token.json()["code"] == "E_UNAUTHENTICATED"
        assert "Traceback" not in no_token.text
    assert await process.stop() == 0


async def test_an_oversize_body_is_refused_with_413_on_http_and_on_grpc(
    processes: list[ServiceProcess],
) -> None:
    process = await start(processes, dagmanager("--max-body-bytes", "4096"))
    big = DagBuilder()
    chain(big, 40, tags=("big",))
    request = big.request("s-big")
    assert request.ByteSize() > 4096
    async with httpx.AsyncClient() as http:
        refused = await http.post(
            process.url("internal", "/v1/dag-manager/internal/diff"),
            content=request.SerializeToString(),
            headers={**bearer("dag:diff"), "content-type": codec.PROTOBUF, "accept": codec.JSON},
        )
    assert refused.status_code == 413
    assert refused.json()["code"] == "E_PAYLOAD_TOO_LARGE"
    with pytest.raises(grpc.aio.AioRpcError) as too_big:
        await grpc_diff(process, request)
    assert too_big.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await process.stop() == 0


async def test_production_profile_refuses_the_memory_backend() -> None:
    proc = await asyncio.create_subprocess_exec(
        str(QMTL), "dagmanager", "--profile", "production", "--backend", "memory", *FREE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"QMTL_TOKEN_SECRET": SECRET, "PATH": ""}, cwd=REPO,
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"production profile refuses --backend memory" in err
    assert b"Traceback" not in err
    assert out == b""


async def test_help_lists_every_option_with_its_environment_variable() -> None:
    proc = await asyncio.create_subprocess_exec(
        str(QMTL), "dagmanager", "--help",
        stdout=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    out, _ = await proc.communicate()
    text = " ".join(out.decode().split())
    for flag, env in (
        ("--backend", "QMTL_DAGMANAGER_BACKEND"),
        ("--public-port", "QMTL_DAGMANAGER_PUBLIC_PORT"),
        ("--grpc-port", "QMTL_DAGMANAGER_GRPC_PORT"),
        ("--graph-prefix", "QMTL_GRAPH_PREFIX"),
        ("--token-secret", "QMTL_TOKEN_SECRET"),
        ("--instance-id", "QMTL_DAGMANAGER_INSTANCE_ID"),
        ("--profile", "QMTL_PROFILE"),
    ):
        assert flag in text
        assert env in text


# -- the real backend: the shared Neo4j (own graph prefix) and Kafka ---------------------------


@pytest.fixture
async def graph_prefix() -> AsyncIterator[str]:
    names = GraphNames(f"T{uuid.uuid4().hex[:12]}")
    yield names.prefix
    driver = await open_driver()
    try:
        await drop_graph(driver, names)
    finally:
        await driver.close()


async def migrate(prefix: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(QMTL), "migrate", "--label-prefix", prefix,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out + err).decode()


async def restarted_events(instance_id: str, count: int) -> list[event_pb2.Event]:
    """The ServiceRestarted events of `instance_id` on the ops topic, once there are `count`."""
    from qmtl.runtime.eventbus.kafka import KafkaEventBus

    found: dict[str, event_pb2.Event] = {}

    async def collect(delivery: Delivery) -> None:
        restarted = delivery.event.service_restarted
        if restarted.instance_id == instance_id:
            found[delivery.event.idempotency_key] = delivery.event

    bus = await KafkaEventBus.connect(ServiceEndpoints.from_env().kafka_bootstrap)
    try:
        subscription = await bus.subscribe([OPS_EVENTS], f"test-{uuid.uuid4().hex}", collect)

        async def enough() -> bool:
            return len(found) >= count

        await eventually(enough, what=f"{count} ServiceRestarted of {instance_id}", within=60)
        await subscription.stop()
    finally:
        await bus.aclose()
    return sorted(found.values(), key=lambda e: e.service_restarted.started_at.ToNanoseconds())


async def test_real_backend_topics_survive_a_restart_and_a_sigkill_is_reported_as_a_crash(
    processes: list[ServiceProcess], graph_prefix: str
) -> None:
    await migrate(graph_prefix)
    instance = f"test-dm-{uuid.uuid4().hex[:8]}"
    args = ("--backend", "real", "--graph-prefix", graph_prefix, "--instance-id", instance)
    request = dag_request(f"t{uuid.uuid4().hex[:10]}")

    first = await start(processes, dagmanager(*args))
    assert not first.crash_detected
    created = await grpc_diff(first, request)
    assert len(created.result.new_node_ids) == 3
    topics = sorted(q.queue for q in created.result.queue_map.queues.values())
    from qmtl.runtime.topicadmin.kafka import KafkaTopicAdmin

    admin = await KafkaTopicAdmin.connect(ServiceEndpoints.from_env().kafka_bootstrap)
    try:
        assert sorted(await admin.describe_topics(topics)) == topics
        assert await first.stop(signal.SIGTERM) == 0

        second = await start(processes, dagmanager(*args))
        assert not second.crash_detected  # the SIGTERM removed the marker
        reused = await grpc_diff(second, request)
        assert sorted(reused.result.reused_node_ids) == sorted(created.result.new_node_ids)
        assert not reused.result.new_node_ids
        assert json_format.MessageToDict(reused.result.queue_map) == json_format.MessageToDict(
            created.result.queue_map
        )
        assert await second.stop(signal.SIGKILL) == -signal.SIGKILL

        third = await start(processes, dagmanager(*args))
        assert third.crash_detected  # the marker the killed run left behind
        assert await third.stop() == 0
    finally:
        await admin.delete_topics(topics)
        await admin.aclose()

    events = await restarted_events(instance, 3)
    assert [e.service_restarted.crash_detected for e in events] == [False, False, True]
    assert {e.subject for e in events} == {"services/dag-manager"}


async def test_neo4j_down_at_start_keeps_serving_with_ready_503_naming_it(
    processes: list[ServiceProcess],
) -> None:
    with_closed_port = dagmanager(
        "--backend", "real", "--neo4j-uri", "bolt://127.0.0.1:1", "--graph-prefix", "Tdown"
    )
    processes.append(with_closed_port)
    await with_closed_port.start()
    async with httpx.AsyncClient() as http:

        async def graph_store_reported_down() -> bool:
            answer = await http.get(with_closed_port.url("internal", "/ready"))
            if answer.status_code != 503:
                return False
            states = {c["name"]: c for c in answer.json()["components"]}
            store = states.get("graph_store", {})
            return bool(
                store.get("state") == "HEALTH_STATE_DOWN" and store.get("adapter") == "neo4j"
            )

        await eventually(graph_store_reported_down, what="graph_store DOWN", within=30,
                         watch=[with_closed_port])  # fmt: skip
        assert (await http.get(with_closed_port.url("public", "/health"))).status_code == 200
        public = await http.get(with_closed_port.url("public", "/ready"))
        assert public.status_code == 503
        assert public.json() == {
            "service": "dag-manager",
            "state": "HEALTH_STATE_DOWN",
            "ready": False,
        }
        # rpcs other than health answer 503 E_UNAVAILABLE (retryable) while booting.
        booting = await http.get(
            with_closed_port.url("public", "/v1/dag-manager/nodes/x"),
            headers={**bearer("dag:read"), "accept": codec.JSON},
        )
        assert booting.status_code == 503
        assert booting.json()["code"] == "E_UNAVAILABLE"
    with_closed_port.check_alive()  # retrying, not crash-looping
    assert "boot: connect graph_store failed (attempt 1)" in with_closed_port.logs()
    assert await with_closed_port.stop() == 0


async def test_a_taken_port_is_exit_1_naming_the_listener_without_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            str(QMTL), "dagmanager", "--public-port", str(port), "--internal-port", "0",
            "--grpc-port", "0", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={"QMTL_TOKEN_SECRET": SECRET}, cwd=REPO,
        )  # fmt: skip
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    assert proc.returncode == 1
    assert f"the public listener cannot bind 127.0.0.1:{port}".encode() in err
    assert b"Traceback" not in err
    assert out == b""
