"""SubmitStrategy: validation (the runtime's one rule), dedupe, idempotency, the queued job."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf import duration_pb2

from qmtl.dag.v1 import dag_pb2
from qmtl.gateway.v1 import strategy_messages_pb2
from qmtl.runtime import nodeid
from qmtl.runtime.dag_validation import DagLimits
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.work.v1 import work_state_pb2, work_type_pb2
from tests.dag_manager.dag_builders import DagBuilder, make_node
from tests.gateway.gateway_support import (
    QUEUED,
    GatewayEnv,
    gateway_env,
    submit_request,
)

E = ErrorCode
Request = strategy_messages_pb2.SubmitStrategyRequest


def _no_dag(request: Request) -> None:
    request.ClearField("dag")


def _schema_version(request: Request) -> None:
    request.dag.schema_version = "v0"


def _no_nodes(request: Request) -> None:
    del request.dag.nodes[:]
    request.node_ids_crc32 = 0


def _missing_code_hash(request: Request) -> None:
    request.dag.nodes[0].spec.code_hash = ""


def _wrong_node_id(request: Request) -> None:
    request.dag.nodes[1].node_id = "blake3:" + "0" * 64


def _wrong_crc(request: Request) -> None:
    request.node_ids_crc32 ^= 1


def _schema_compat(request: Request) -> None:
    request.dag.nodes[0].spec.schema_id = "another-schema"


def _cycle(request: Request) -> None:
    a, b = request.dag.nodes
    a.spec.dependencies.append(b.node_id)


def _repeated_node(request: Request) -> None:
    request.dag.nodes.append(request.dag.nodes[0])


def _stray_edge(request: Request) -> None:
    request.dag.edges.append(dag_pb2.Edge(source="blake3:x", target=request.dag.nodes[0].node_id))


def _bad_tag(request: Request) -> None:
    request.dag.nodes[0].tags.append("no spaces allowed")


def _bad_callback(request: Request) -> None:
    request.callback_url = "ftp://hooks.example.com/x"


def _callback_with_credentials(request: Request) -> None:
    request.callback_url = "https://user:secret@hooks.example.com/x"


@pytest.mark.parametrize(
    ("breaks", "code", "field"),
    [
        (_no_dag, E.ERROR_CODE_VALIDATION, "dag"),
        (_schema_version, E.ERROR_CODE_SCHEMA_INVALID, "dag.schema_version"),
        (_no_nodes, E.ERROR_CODE_VALIDATION, "dag.nodes"),
        (_missing_code_hash, E.ERROR_CODE_NODE_ID_FIELDS, "dag.nodes[0].spec.code_hash"),
        (_wrong_node_id, E.ERROR_CODE_NODE_ID_MISMATCH, "dag.nodes[1].node_id"),
        (_wrong_crc, E.ERROR_CODE_CHECKSUM_MISMATCH, "node_ids_crc32"),
        (_schema_compat, E.ERROR_CODE_SCHEMA_COMPAT_MISMATCH, "dag.nodes[0].spec.schema_id"),
        (_cycle, E.ERROR_CODE_DAG_CYCLE, "dag.nodes[0].spec.dependencies"),
        (_repeated_node, E.ERROR_CODE_DAG_INVALID, "dag.nodes[2].node_id"),
        (_stray_edge, E.ERROR_CODE_DAG_INVALID, "dag.edges[0]"),
        (_bad_tag, E.ERROR_CODE_VALIDATION, "dag.nodes[0].tags[1]"),
        (_bad_callback, E.ERROR_CODE_VALIDATION, "callback_url"),
        (_callback_with_credentials, E.ERROR_CODE_VALIDATION, "callback_url"),
    ],
)
async def test_a_bad_submission_is_refused_with_its_code_and_field_and_nothing_is_stored(
    env: GatewayEnv, breaks: Callable[[Request], None], code: int, field: str
) -> None:
    request = submit_request()
    breaks(request)
    with pytest.raises(QmtlError) as raised:
        await env.submit(request)
    assert raised.value.code == code, raised.value.message
    assert raised.value.details["field"] == field
    assert 400 <= raised.value.http_status < 500
    assert (await env.store.list(limit=10))[0] == []
    assert (await env.queue.stats()).ready == 0
    assert env.dag_manager.calls == []


async def test_a_dag_over_the_node_limit_is_too_large() -> None:
    async for env in gateway_env(limits=DagLimits(max_nodes=1)):
        with pytest.raises(QmtlError) as raised:
            await env.submit(submit_request())
        assert raised.value.code == E.ERROR_CODE_PAYLOAD_TOO_LARGE
        assert raised.value.http_status == 413


async def test_a_callback_host_off_the_allow_list_is_refused() -> None:
    async for env in gateway_env(callback_allowed_hosts=["hooks.example.com"]):
        with pytest.raises(QmtlError) as raised:
            await env.submit(submit_request(callback_url="https://evil.example.org/x"))
        assert raised.value.details["reason"] == "host"
        response, _ = await env.submit(submit_request(callback_url="https://hooks.example.com/x"))
        assert response.state == QUEUED


async def test_submit_stores_the_strategy_queued_and_enqueues_its_diff_job(
    env: GatewayEnv,
) -> None:
    request = submit_request(callback_url="https://hooks.example.com/cb")
    response, status = await env.submit(request)
    assert status == 202
    assert response.state == QUEUED
    ids = [node.node_id for node in request.dag.nodes]
    assert response.dag_hash == nodeid.dag_hash(ids)
    assert response.node_ids_crc32 == request.node_ids_crc32
    assert not response.HasField("diff")
    stored = await env.strategy(response.strategy_id)
    assert (stored.state, stored.work_item_id, stored.name) == (
        QUEUED,
        response.work_item_id,
        "test strategy",
    )
    assert stored.dag == request.dag
    assert stored.callback_url == "https://hooks.example.com/cb"
    item = await env.queue.get(response.work_item_id)
    assert item is not None
    assert item.type == work_type_pb2.WORK_TYPE_STRATEGY_DIFF
    assert item.state == work_state_pb2.WORK_STATE_READY
    assert item.strategy_id == response.strategy_id
    assert item.max_attempts == env.settings.diff_max_attempts
    [queued] = await env.state_events(response.strategy_id)
    assert queued.strategy_state_changed.to_state == QUEUED
    assert queued.subject == f"strategies/{response.strategy_id}"
    assert [e.id for e in await env.outbox_events()] == [queued.id]
    assert env.notified  # the relay was told about the outbox entry


async def test_the_same_dag_again_is_a_duplicate_naming_the_first_strategy(
    env: GatewayEnv,
) -> None:
    first, _ = await env.submit(submit_request())
    with pytest.raises(QmtlError) as raised:
        await env.submit(submit_request(name="another name"))
    assert raised.value.code == E.ERROR_CODE_DUPLICATE
    assert raised.value.http_status == 409
    assert raised.value.details["strategy_id"] == first.strategy_id
    assert raised.value.details["dag_hash"] == first.dag_hash
    assert len((await env.store.list(limit=10))[0]) == 1


async def test_node_order_does_not_change_the_dag_hash(env: GatewayEnv) -> None:
    builder = DagBuilder()
    builder.add(make_node("Source", params={"a": 1}))
    builder.add(make_node("Source", params={"a": 2}))
    first, _ = await env.submit(submit_request(builder))
    builder.nodes.reverse()
    with pytest.raises(QmtlError) as raised:
        await env.submit(submit_request(builder))
    assert raised.value.details["strategy_id"] == first.strategy_id


async def test_a_repeat_with_the_same_idempotency_key_replays_the_first_answer(
    env: GatewayEnv,
) -> None:
    first, _ = await env.submit(submit_request(idempotency_key="k-1"))
    again = submit_request(idempotency_key="k-1")
    again.wait_timeout.CopyFrom(duration_pb2.Duration(nanos=1_000_000))  # not part of the key
    replayed, status = await env.submit(again)
    assert replayed.strategy_id == first.strategy_id
    assert replayed.work_item_id == first.work_item_id
    assert status == 202
    assert len(await env.state_events()) == 1
    assert (await env.queue.stats()).ready == 1


async def test_the_same_key_with_another_payload_is_an_idempotency_conflict(
    env: GatewayEnv,
) -> None:
    await env.submit(submit_request(idempotency_key="k-2"))
    with pytest.raises(QmtlError) as raised:
        await env.submit(submit_request(idempotency_key="k-2", name="changed"))
    assert raised.value.code == E.ERROR_CODE_IDEMPOTENCY_CONFLICT
    assert raised.value.http_status == 409
    assert len((await env.store.list(limit=10))[0]) == 1


async def test_a_negative_wait_is_refused(env: GatewayEnv) -> None:
    request = submit_request()
    request.wait_timeout.seconds = -1
    with pytest.raises(QmtlError) as raised:
        await env.submit(request)
    assert raised.value.details["field"] == "wait_timeout"
