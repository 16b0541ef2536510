"""/metrics on a served service: an HTTP and a gRPC call through the one pipeline bump
qmtl_requests_total / qmtl_request_duration_seconds with their rpc, transport and code, and an
outgoing GrpcCaller call bumps the client metrics. Served here is the DAG Manager's generated
binding over its embedded in-memory handler, on free ports, as `qmtl dagmanager` serves it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from qmtl.dagmanager.v1 import node_messages_pb2, status_messages_pb2
from qmtl.dagmanager.v1.dag_manager_service_handler import DAG_MANAGER_SERVICE
from qmtl.runtime import metrics
from qmtl.runtime.auth import HmacTokenVerifier, issue_token
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.eventbus import InMemoryEventBus
from qmtl.runtime.grpc.client import GrpcCaller
from qmtl.runtime.serve import ServeConfig, Served
from qmtl.services.dag_manager.app import binding, embed

SECRET = b"metrics-test-secret-metrics-test"
GET_STATUS = "qmtl.dagmanager.v1.DagManagerService.GetStatus"
GET_NODE = "qmtl.dagmanager.v1.DagManagerService.GetNode"


def sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    embedded = await embed(InMemoryEventBus())
    config = ServeConfig(public_port=0, internal_port=0, grpc_port=0, handle_signals=False)
    server = Served(embedded.handler, HmacTokenVerifier({"": SECRET}), binding(), config=config)
    task = asyncio.create_task(server.run())
    await server.wait_started()
    try:
        yield server
    finally:
        server.stop()
        await task
        await embedded.aclose()


async def test_an_http_call_is_counted_and_timed_with_its_rpc_transport_and_code(
    served: Served,
) -> None:
    labels = {"rpc": GET_STATUS, "transport": "http", "code": "OK"}
    before = sample("qmtl_requests_total", **labels)
    timed_before = sample("qmtl_request_duration_seconds_count", **labels)
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{served.public_port}/v1/dag-manager/status")
    assert answer.status_code == 200
    assert sample("qmtl_requests_total", **labels) == before + 1
    assert sample("qmtl_request_duration_seconds_count", **labels) == timed_before + 1


async def test_a_grpc_call_is_counted_on_both_ends_with_its_error_code(served: Served) -> None:
    served_ok = {"rpc": GET_STATUS, "transport": "grpc", "code": "OK"}
    served_missing = {"rpc": GET_NODE, "transport": "grpc", "code": "E_NOT_FOUND"}
    client_ok = {"rpc": GET_STATUS, "code": "OK"}
    client_missing = {"rpc": GET_NODE, "code": "E_NOT_FOUND"}
    before = {
        key: sample(name, **labels)
        for key, name, labels in (
            ("served_ok", "qmtl_requests_total", served_ok),
            ("served_missing", "qmtl_requests_total", served_missing),
            ("client_ok", "qmtl_grpc_client_requests_total", client_ok),
            ("client_missing", "qmtl_grpc_client_requests_total", client_missing),
            ("http_ok", "qmtl_requests_total", {**served_ok, "transport": "http"}),
        )
    }
    token = issue_token(SECRET, "metrics-test", ["dag:read"])
    caller = GrpcCaller(f"127.0.0.1:{served.grpc_port}", token=token, service=DAG_MANAGER_SERVICE)
    try:
        await caller.call(
            DAG_MANAGER_SERVICE.rpc("GetStatus"), status_messages_pb2.GetStatusRequest()
        )
        with pytest.raises(QmtlError) as refused:
            await caller.call(
                DAG_MANAGER_SERVICE.rpc("GetNode"),
                node_messages_pb2.GetNodeRequest(node_id="blake3:" + "0" * 64),
            )
    finally:
        await caller.aclose()
    assert refused.value.wire_code == "E_NOT_FOUND"
    assert sample("qmtl_requests_total", **served_ok) == before["served_ok"] + 1
    assert sample("qmtl_requests_total", **served_missing) == before["served_missing"] + 1
    assert sample("qmtl_grpc_client_requests_total", **client_ok) == before["client_ok"] + 1
    assert (
        sample("qmtl_grpc_client_requests_total", **client_missing) == before["client_missing"] + 1
    )
    assert sample("qmtl_grpc_client_request_duration_seconds_count", **client_ok) >= 1
    # A gRPC call is not an HTTP one.
    http_ok = {**served_ok, "transport": "http"}
    assert sample("qmtl_requests_total", **http_ok) == before["http_ok"]


async def test_metrics_are_served_on_the_internal_listener_only(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        await client.get(f"http://127.0.0.1:{served.public_port}/v1/dag-manager/status")
        internal = await client.get(f"http://127.0.0.1:{served.internal_port}/metrics")
        public = await client.get(f"http://127.0.0.1:{served.public_port}/metrics")
    assert internal.status_code == 200
    assert internal.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(internal.text)}
    requests = families["qmtl_requests"]
    assert any(
        s.labels == {"rpc": GET_STATUS, "transport": "http", "code": "OK"} and s.value >= 1
        for s in requests.samples
        if s.name == "qmtl_requests_total"
    )
    assert "process_start_time_seconds" in families
    assert families["qmtl_scrape_source_up"].samples == []  # no source without a reporter
    assert public.status_code == 404
