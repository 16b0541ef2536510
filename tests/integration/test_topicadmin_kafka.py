"""What only a real broker shows about KafkaTopicAdmin (the rest is the contract suite):
replication clamped to the cluster DescribeCluster reports, a topic made by someone else
with other settings, the broker's own refusal of a config, two admins racing to create the
same topics, and an unreachable cluster. Topics live under a per-test prefix on the shared
broker and are deleted afterwards; a broker that does not answer fails, never skips."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import (
    ConfigResource,
    ConfigResourceType,
)

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.topicadmin import (
    InvalidTopicError,
    TopicAdminError,
    TopicConfigMismatchError,
    TopicSpec,
    topic_spec_for,
)
from qmtl.runtime.topicadmin.kafka import KafkaTopicAdmin, RetryPolicy
from tests.contract.topicadmin_support import TopicNames, connect_kafka, delete_mine


@pytest.fixture
async def names() -> TopicNames:
    return TopicNames(f"tadm-{uuid.uuid4().hex[:12]}.")


@pytest.fixture
async def kafka(names: TopicNames) -> AsyncIterator[KafkaTopicAdmin]:
    admin = await connect_kafka(client_id="topicadmin-it")
    try:
        yield admin
    finally:
        try:
            await delete_mine(admin, names)
        finally:
            await admin.aclose()


@pytest.fixture
async def raw(endpoints: ServiceEndpoints) -> AsyncIterator[AIOKafkaAdminClient]:
    """aiokafka's own admin client: the broker as someone else sees it."""
    client = AIOKafkaAdminClient(bootstrap_servers=endpoints.kafka_bootstrap)
    await client.start()
    yield client
    await client.close()


async def cluster_size(raw: AIOKafkaAdminClient) -> int:
    return len((await raw.describe_cluster())["brokers"])


async def broker_configs(raw: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    [response] = await raw.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    [resource] = response.to_object()["resources"]
    return {e["config_names"]: e["config_value"] for e in resource["config_entries"]}


async def test_replication_is_clamped_to_the_brokers_the_cluster_has(
    kafka: KafkaTopicAdmin, raw: AIOKafkaAdminClient, names: TopicNames
) -> None:
    brokers = await cluster_size(raw)
    assert brokers < 3, "this test needs a cluster smaller than the raw profile's replication"
    spec = topic_spec_for(names("btc_RawTicks_abcdef12_v1"), "RawTicks")
    assert spec.replication_factor == 3
    assert await kafka.ensure_topics([spec]) == [spec.name]
    [metadata] = await raw.describe_topics([spec.name])
    assert len(metadata["partitions"]) == 3
    assert {len(p["replicas"]) for p in metadata["partitions"]} == {brokers}
    described = (await kafka.describe_topics([spec.name]))[spec.name]
    assert (described.partitions, described.replication_factor) == (3, brokers)
    assert await kafka.ensure_topics([spec]) == []  # the clamp is no mismatch


async def test_the_qmtl_keys_never_reach_the_broker(
    kafka: KafkaTopicAdmin, raw: AIOKafkaAdminClient, names: TopicNames
) -> None:
    spec = topic_spec_for(names("btc_Node_abcdef12_v1"), "Node")
    await kafka.ensure_topics([spec])
    configs = await broker_configs(raw, spec.name)
    assert not [key for key in configs if key.startswith("qmtl.")]
    assert (configs["retention.ms"], configs["cleanup.policy"]) == (
        str(spec.retention_ms),
        "delete",
    )


async def test_a_topic_made_elsewhere_with_other_settings_is_a_mismatch(
    kafka: KafkaTopicAdmin, raw: AIOKafkaAdminClient, names: TopicNames
) -> None:
    name = names("foreign")
    response = await raw.create_topics(
        [NewTopic(name, 2, 1, topic_configs={"cleanup.policy": "compact"})]
    )
    assert response.to_object()["topic_errors"][0]["error_code"] == 0
    wanted = names.spec("foreign", partitions=4, retention_ms=60_000)
    with pytest.raises(TopicConfigMismatchError) as caught:
        await kafka.ensure_topics([wanted])
    assert caught.value.expected == {
        "partitions": "4",
        "retention.ms": "60000",
        "cleanup.policy": "delete",
    }
    broker_default = (await broker_configs(raw, name))["retention.ms"]
    assert caught.value.actual == {
        "partitions": "2",
        "retention.ms": broker_default,
        "cleanup.policy": "compact",
    }
    [metadata] = await raw.describe_topics([name])
    assert len(metadata["partitions"]) == 2  # never altered


async def test_settings_beyond_the_spec_set_by_an_operator_are_accepted(
    kafka: KafkaTopicAdmin, raw: AIOKafkaAdminClient, names: TopicNames
) -> None:
    wanted = names.spec("tuned")
    await raw.create_topics(
        [
            NewTopic(
                wanted.name,
                1,
                1,
                topic_configs={
                    "retention.ms": "60000",
                    "cleanup.policy": "delete",
                    "segment.ms": "3600000",
                },
            )
        ]
    )
    assert await kafka.ensure_topics([wanted]) == []
    assert await kafka.describe_topics([wanted.name]) == {wanted.name: wanted}


async def test_a_config_the_broker_refuses_is_invalid_input(
    kafka: KafkaTopicAdmin, names: TopicNames
) -> None:
    bad = TopicSpec(names("bad"), 1, 1, 60_000, {"cleanup.policy": "shred"})
    with pytest.raises(InvalidTopicError) as caught:
        await kafka.ensure_topics([names.spec("good"), bad])
    assert caught.value.field == "specs[1].config"
    assert "shred" in caught.value.message or "cleanup.policy" in caught.value.message
    assert not caught.value.retryable
    assert await kafka.describe_topics([bad.name]) == {}


async def test_two_admins_ensuring_the_same_topics_at_once_both_succeed(
    kafka: KafkaTopicAdmin, names: TopicNames
) -> None:
    other = await connect_kafka(client_id="topicadmin-it-other")
    try:
        specs = [names.spec(f"t{i}", partitions=2) for i in range(6)]
        first, second = await asyncio.gather(
            kafka.ensure_topics(specs), other.ensure_topics(list(reversed(specs)))
        )
    finally:
        await other.aclose()
    # Each topic was created by exactly one of them; the other found it and verified it.
    assert set(first).isdisjoint(second)
    assert set(first) | set(second) == {spec.name for spec in specs}
    described = await kafka.describe_topics([spec.name for spec in specs])
    assert described == {spec.name: spec for spec in specs}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_an_unreachable_cluster_is_retried_then_a_retryable_error() -> None:
    policy = RetryPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.02)
    with pytest.raises(TopicAdminError) as caught:
        await KafkaTopicAdmin.connect(
            f"127.0.0.1:{free_port()}", retry=policy, request_timeout_ms=1000
        )
    assert caught.value.retryable
    assert caught.value.attempts == 3
    assert caught.value.operation == "connect"
