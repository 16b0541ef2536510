"""Idempotent calls are retried with backoff, honouring `retryable` and `retry_after`."""

from __future__ import annotations

import pytest

from qmtl.dagmanager.v1.dag_manager_service_client import DagManagerServiceClient as SyncClient
from qmtl.dagmanager.v1.gc_messages_pb2 import TriggerGcRequest
from qmtl.dagmanager.v1.node_messages_pb2 import GetNodeRequest
from qmtl.runtime.client import NO_RETRY, QmtlError, RetryPolicy
from qmtl.runtime.errors import ErrorCode
from tests.client.support import (
    Apps,
    Recorder,
    ServedApps,
    asgi_client,
    free_port,
    sync_client,
)

GET = GetNodeRequest(node_id="blake3:00")


def unavailable(retry_after: float | None = None) -> QmtlError:
    return QmtlError.unavailable("backend restarting", retry_after=retry_after)


async def test_retryable_errors_of_a_get_are_retried_until_it_answers(
    apps: Apps, recorder: Recorder
) -> None:
    apps.handler.failures["get_node"] = [unavailable(), unavailable()]
    client = asgi_client(apps, retry=recorder.policy())

    answer = await client.get_node(GET)

    assert answer.node.queue == GET.node_id
    assert apps.handler.count("get_node") == 3
    assert recorder.waits == [0.1, 0.2]  # initial_backoff, then times the multiplier


async def test_retry_after_is_waited_at_least(apps: Apps, recorder: Recorder) -> None:
    apps.handler.failures["get_node"] = [unavailable(retry_after=2), unavailable()]
    client = asgi_client(apps, retry=recorder.policy())

    await client.get_node(GET)

    assert recorder.waits == [2.0, 0.2]


async def test_attempts_stop_at_max_attempts_with_the_last_error(
    apps: Apps, recorder: Recorder
) -> None:
    apps.handler.failures["get_node"] = [unavailable() for _ in range(5)]
    client = asgi_client(apps, retry=recorder.policy(max_attempts=4, max_backoff=0.3))

    with pytest.raises(QmtlError) as raised:
        await client.get_node(GET)

    assert (raised.value.status, raised.value.code) == (503, ErrorCode.ERROR_CODE_UNAVAILABLE)
    assert apps.handler.count("get_node") == 4
    assert recorder.waits == [0.1, 0.2, 0.3]  # capped at max_backoff


async def test_a_non_retryable_error_is_raised_at_once(apps: Apps, recorder: Recorder) -> None:
    apps.handler.failures["get_node"] = [QmtlError.not_found("no node", node_id="x")]
    client = asgi_client(apps, retry=recorder.policy())

    with pytest.raises(QmtlError) as raised:
        await client.get_node(GET)

    assert (raised.value.status, raised.value.wire_code) == (404, "E_NOT_FOUND")
    assert apps.handler.count("get_node") == 1
    assert recorder.waits == []


async def test_a_non_idempotent_call_is_never_retried(apps: Apps, recorder: Recorder) -> None:
    apps.handler.failures["trigger_gc"] = [unavailable()]
    client = asgi_client(apps, retry=recorder.policy())

    with pytest.raises(QmtlError) as raised:
        await client.trigger_gc(TriggerGcRequest())

    assert raised.value.retryable
    assert apps.handler.count("trigger_gc") == 1
    assert recorder.waits == []


async def test_the_policy_is_overridable_per_call(apps: Apps, recorder: Recorder) -> None:
    apps.handler.failures["get_node"] = [unavailable(), unavailable()]
    client = asgi_client(apps, retry=recorder.policy())

    with pytest.raises(QmtlError):
        await client.get_node(GET, retry=NO_RETRY)
    assert apps.handler.count("get_node") == 1

    await client.get_node(GET, retry=recorder.policy(max_attempts=2))
    assert apps.handler.count("get_node") == 3


async def test_a_retry_after_beyond_the_deadline_is_not_waited_for(
    apps: Apps, recorder: Recorder
) -> None:
    apps.handler.failures["get_node"] = [unavailable(retry_after=30)]
    client = asgi_client(apps, retry=recorder.policy())

    with pytest.raises(QmtlError) as raised:
        await client.get_node(GET, timeout=5)

    assert raised.value.retry_after == 30
    assert apps.handler.count("get_node") == 1
    assert recorder.waits == []


async def test_a_retry_after_above_max_retry_after_is_not_retried(
    apps: Apps, recorder: Recorder
) -> None:
    apps.handler.failures["get_node"] = [unavailable(retry_after=90)]
    client = asgi_client(apps, retry=recorder.policy(), timeout=600)

    with pytest.raises(QmtlError):
        await client.get_node(GET)

    assert apps.handler.count("get_node") == 1


def test_sync_client_retries_over_uvicorn(served: ServedApps, recorder: Recorder) -> None:
    served.apps.handler.failures["get_node"] = [unavailable(retry_after=1), unavailable()]

    with sync_client(served, retry=recorder.policy()) as client:
        answer = client.get_node(GET)

    assert answer.node.queue == GET.node_id
    assert served.apps.handler.count("get_node") == 3
    assert recorder.waits == [1.0, 0.2]


def test_refused_connections_are_retried_as_e_unavailable_with_status_0(
    recorder: Recorder,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with (
        SyncClient(url, url, retry=recorder.policy()) as client,
        pytest.raises(QmtlError) as raised,
    ):
        client.get_node(GET)

    assert (raised.value.status, raised.value.wire_code) == (0, "E_UNAVAILABLE")
    assert raised.value.retryable
    assert recorder.waits == [0.1, 0.2]


def test_jitter_shortens_the_backoff_by_at_most_its_fraction() -> None:
    policy = RetryPolicy(jitter=0.5, random=lambda: 1.0)

    assert policy.backoff(1) == pytest.approx(0.05)
    assert RetryPolicy(jitter=0.5, random=lambda: 0.0).backoff(3) == pytest.approx(0.4)


@pytest.mark.parametrize(
    "options",
    [{"max_attempts": 0}, {"initial_backoff": 9}, {"multiplier": 0.5}, {"jitter": 2}],
)
def test_a_policy_out_of_range_is_a_typed_error(options: dict[str, float]) -> None:
    with pytest.raises(QmtlError) as raised:
        RetryPolicy(**options)  # type: ignore[arg-type]

    assert raised.value.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT
