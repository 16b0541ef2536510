"""KafkaTopicAdmin's retries and error mapping, on a scripted stand-in for aiokafka's admin
client: the broker answers a healthy broker never gives (no controller, timeouts, refusals)
on demand, so each path is reached deterministically. Real-broker behaviour is in the
contract suite and tests/integration/test_topicadmin_kafka.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka.errors import (
    IncompatibleBrokerVersion,
    KafkaTimeoutError,
    RequestTimedOutError,
)

from qmtl.runtime.topicadmin import TopicAdminError, TopicSpec
from qmtl.runtime.topicadmin.kafka import KafkaTopicAdmin, RetryPolicy

NOT_CONTROLLER = 41  # retriable
AUTHORIZATION_FAILED = 29  # not retriable
UNKNOWN_TOPIC = 3

FAST = RetryPolicy(attempts=4, initial_backoff=0.0, max_backoff=0.0, settle_timeout=1.0)


class Answer(dict[str, Any]):
    def to_object(self) -> dict[str, Any]:
        return dict(self)


class ScriptedBroker:
    """Holds topics like a one-broker cluster; `create_codes`/`delete_codes` are per-call
    lists of {topic: error code} answered before the real handling (missing: handle it)."""

    def __init__(self) -> None:
        self.topics: dict[str, tuple[int, dict[str, str]]] = {}
        self.create_codes: list[dict[str, int]] = []
        self.delete_codes: list[dict[str, int]] = []
        self.create_calls: list[list[str]] = []
        self.delete_calls: list[list[str]] = []
        self.raise_on_cluster: list[BaseException] = []
        self.linger_polls = 0
        self.metadata_auto_create: list[object] = []
        # Deleted topics the metadata still shows, for that many more Metadata requests.
        self.lingering: dict[str, int] = {}

    async def describe_cluster(self) -> dict[str, Any]:
        if self.raise_on_cluster:
            raise self.raise_on_cluster.pop(0)
        return {"brokers": [{"node_id": 1}]}

    async def create_topics(self, new_topics: Sequence[Any], timeout_ms: int) -> Answer:
        self.create_calls.append([t.name for t in new_topics])
        scripted = self.create_codes.pop(0) if self.create_codes else {}
        errors = []
        for topic in new_topics:
            code = scripted.get(topic.name)
            if code is None:
                code = 36 if topic.name in self.topics else 0
                if code == 0:
                    self.topics[topic.name] = (topic.num_partitions, dict(topic.topic_configs))
            errors.append({"topic": topic.name, "error_code": code, "error_message": None})
        return Answer(topic_errors=errors)

    async def delete_topics(self, topics: list[str], timeout_ms: int) -> Answer:
        self.delete_calls.append(list(topics))
        scripted = self.delete_codes.pop(0) if self.delete_codes else {}
        codes = []
        for name in topics:
            code = scripted.get(name)
            if code is None:
                gone = self.topics.pop(name, None)
                code = 0 if gone is not None else UNKNOWN_TOPIC
                if gone is not None and self.linger_polls:
                    self.lingering[name] = self.linger_polls
            codes.append({"topic": name, "error_code": code})
        return Answer(topic_error_codes=codes)

    async def list_topics(self) -> list[str]:
        return list(self.topics)

    async def _send_request(self, request: Any) -> Answer:
        self.metadata_auto_create.append(request._allow_auto_topic_creation)
        answer = []
        for name in request._topics:
            if self.lingering.get(name, 0) > 0:
                self.lingering[name] -= 1
                partitions = [{"partition": 0, "leader": 1, "replicas": [1]}]
                answer.append({"topic": name, "error_code": 0, "partitions": partitions})
            elif name in self.topics:
                partitions = [
                    {"partition": i, "leader": 1, "replicas": [1]}
                    for i in range(self.topics[name][0])
                ]
                answer.append({"topic": name, "error_code": 0, "partitions": partitions})
            else:
                answer.append({"topic": name, "error_code": UNKNOWN_TOPIC, "partitions": []})
        return Answer(topics=answer)

    async def describe_configs(self, resources: Sequence[Any]) -> list[Answer]:
        described = []
        for resource in resources:
            configs = {"cleanup.policy": "delete", **self.topics[resource.name][1]}
            entries = [{"config_names": k, "config_value": v} for k, v in configs.items()]
            described.append(
                {"resource_name": resource.name, "error_code": 0, "config_entries": entries}
            )
        return [Answer(resources=described)]

    async def close(self) -> None:
        pass


def spec(name: str) -> TopicSpec:
    return TopicSpec(name, 2, 3, 60_000, {"retention.ms": "60000"})


def admin_on(broker: ScriptedBroker, policy: RetryPolicy = FAST) -> KafkaTopicAdmin:
    return KafkaTopicAdmin(broker, retry=policy, request_timeout_ms=1000)


def test_the_default_backoff_is_the_domain_schedule() -> None:
    policy = RetryPolicy()
    assert policy.attempts == 5
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]


async def test_a_retriable_create_answer_is_retried_for_the_failed_topics_only() -> None:
    broker = ScriptedBroker()
    broker.create_codes = [{"b": NOT_CONTROLLER}, {"b": NOT_CONTROLLER}]
    assert await admin_on(broker).ensure_topics([spec("a"), spec("b")]) == ["a", "b"]
    assert broker.create_calls == [["a", "b"], ["b"], ["b"]]
    assert set(broker.topics) == {"a", "b"}


async def test_retries_used_up_are_a_retryable_error_with_the_attempts() -> None:
    broker = ScriptedBroker()
    broker.create_codes = [{"a": NOT_CONTROLLER}] * 10
    with pytest.raises(TopicAdminError) as caught:
        await admin_on(broker).ensure_topics([spec("a")])
    assert caught.value.retryable
    assert caught.value.attempts == FAST.attempts
    assert len(broker.create_calls) == FAST.attempts
    wire = caught.value.to_qmtl_error()
    assert wire.details == {"operation": "create", "queue": "a", "attempts": FAST.attempts}


async def test_a_refusal_is_not_retried_and_not_retryable() -> None:
    broker = ScriptedBroker()
    broker.create_codes = [{"a": AUTHORIZATION_FAILED}]
    with pytest.raises(TopicAdminError) as caught:
        await admin_on(broker).ensure_topics([spec("a")])
    assert not caught.value.retryable
    assert "TopicAuthorizationFailed" in caught.value.message
    assert len(broker.create_calls) == 1


@pytest.mark.parametrize("error", [KafkaTimeoutError(), RequestTimedOutError(), TimeoutError()])
async def test_a_timeout_is_retried(error: BaseException) -> None:
    broker = ScriptedBroker()
    broker.raise_on_cluster = [error]
    assert await admin_on(broker).ensure_topics([spec("a")]) == ["a"]


async def test_replication_is_sent_clamped() -> None:
    broker = ScriptedBroker()
    sent: list[int] = []
    create = broker.create_topics

    async def recording(new_topics: Sequence[Any], timeout_ms: int) -> Answer:
        sent.extend(t.replication_factor for t in new_topics)
        return await create(new_topics, timeout_ms)

    broker.create_topics = recording  # type: ignore[method-assign]
    await admin_on(broker).ensure_topics([spec("a")])
    assert sent == [1]


async def test_a_retriable_delete_answer_is_retried() -> None:
    broker = ScriptedBroker()
    admin = admin_on(broker)
    await admin.ensure_topics([spec("a"), spec("b")])
    broker.delete_codes = [{"a": NOT_CONTROLLER}]
    assert await admin.delete_topics(["a", "b", "zz"]) == ["a", "b"]
    assert broker.delete_calls == [["a", "b", "zz"], ["a"]]
    assert broker.topics == {}


async def test_looking_at_topics_never_asks_the_broker_to_create_them() -> None:
    broker = ScriptedBroker()
    admin = admin_on(broker)
    await admin.ensure_topics([spec("a")])
    await admin.describe_topics(["a", "unknown"])
    await admin.list_topics()
    assert broker.metadata_auto_create
    assert set(broker.metadata_auto_create) == {False}


async def test_a_client_error_aiokafka_marks_final_is_not_retried() -> None:
    broker = ScriptedBroker()
    broker.raise_on_cluster = [IncompatibleBrokerVersion(), IncompatibleBrokerVersion()]
    with pytest.raises(TopicAdminError) as caught:
        await admin_on(broker).ensure_topics([spec("a")])
    assert not caught.value.retryable
    assert caught.value.attempts == 1
    assert broker.raise_on_cluster  # the second was never reached


async def test_an_existing_topic_missing_from_the_metadata_is_created_again() -> None:
    # "Already exists" while it is still being deleted: the next attempt creates it anew.
    broker = ScriptedBroker()
    broker.create_codes = [{"a": 36}]
    assert await admin_on(broker).ensure_topics([spec("a")]) == ["a"]
    assert broker.create_calls == [["a"], ["a"]]


async def test_a_topic_that_never_shows_up_is_a_retryable_error() -> None:
    broker = ScriptedBroker()
    broker.create_codes = [{"a": 36}] * 10  # exists, says the controller; metadata disagrees
    policy = RetryPolicy(attempts=3, initial_backoff=0.0, max_backoff=0.0)
    with pytest.raises(TopicAdminError) as caught:
        await admin_on(broker, policy).ensure_topics([spec("a")])
    assert caught.value.retryable
    assert caught.value.attempts == 3
    assert "not described" in caught.value.message


async def test_a_delete_whose_topic_lingers_is_waited_for_without_deleting_again() -> None:
    broker = ScriptedBroker()
    admin = admin_on(broker, RetryPolicy(attempts=5, initial_backoff=0.0, settle_timeout=0.0))
    await admin.ensure_topics([spec("a")])
    broker.linger_polls = 3  # more polls than one attempt's zero-length WAIT makes
    assert await admin.delete_topics(["a"]) == ["a"]
    assert broker.delete_calls == [["a"]]
    assert broker.lingering == {"a": 0}
