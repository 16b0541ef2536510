"""The SDK end to end on the real servers: `qmtl dagmanager --backend real` (Neo4j, Kafka) and
`qmtl gateway --backend real` (Redis, Kafka) as processes in a namespace of the test's own, the
runners on Kafka.

- Two strategies sharing a source and a moving average, running at the same time: the shared
  average's compute function runs exactly once per input bar (counted), and both strategies
  get an output for every bar, including the bars fed before the second one started.
- A TagQueryNode whose strategy is already running picks up a queue created after it started
  (the follower polls the Gateway; the runner attaches the new topic without a restart).
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from qmtl.gateway.v1.gateway_service_client import AsyncGatewayServiceClient
from qmtl.runtime.auth import issue_token
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.recordbus import RecordBus
from qmtl.runtime.recordbus.kafka import KafkaRecordBus
from qmtl.runtime.records import dedupe_key
from qmtl.services.sdk.authoring import Node, StreamInput, TagQueryNode
from qmtl.services.sdk.client import submit
from qmtl.services.sdk.runner import Runner, source_record
from qmtl.services.sdk.strategy import Strategy
from qmtl.services.sdk.tagqueries import TagQueryFollower
from tests.integration.services_support import SECRET, Cluster, Namespace, list_topics
from tests.polling import eventually

SCOPES = ("strategies:submit", "strategies:read", "queues:read")
START = 1_704_067_200
BARS = 20
WITHIN_S = 60.0

# node id -> the buckets its compute function was called for, in call order.
CALLS: dict[str, list[int]] = collections.defaultdict(list)
# tag query node id -> (bucket, {input key: latest value}) of every call.
SEEN: dict[str, list[tuple[int, dict[str, Any]]]] = collections.defaultdict(list)


def mean(view: Any) -> float:
    CALLS[view.node.node_id].append(view.bucket_ts)
    window = view[view.node.inputs[0]]
    return float(sum(window)) / len(window)


def above_100(view: Any) -> bool:
    CALLS[view.node.node_id].append(view.bucket_ts)
    return bool(view.latest(view.node.inputs[0]) > 100)


def doubled(view: Any) -> float:
    CALLS[view.node.node_id].append(view.bucket_ts)
    return float(view.latest(view.node.inputs[0])) * 2


def gather(view: Any) -> int:
    SEEN[view.node.node_id].append((view.bucket_ts, {k: view.latest(k) for k in view}))
    return len(view.keys())


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[Cluster]:
    namespace = Namespace()
    cluster = Cluster(namespace)
    try:
        yield cluster
    finally:
        await cluster.aclose(topics=await list_topics(f"{namespace.asset}_"))


@pytest_asyncio.fixture
async def bus() -> AsyncIterator[RecordBus]:
    bus = await KafkaRecordBus.connect(
        ServiceEndpoints.from_env().kafka_bootstrap, client_id="test-sdk-e2e"
    )
    try:
        yield bus
    finally:
        await bus.aclose()


@pytest_asyncio.fixture
async def client(cluster: Cluster) -> AsyncIterator[AsyncGatewayServiceClient]:
    dagmanager = await cluster.dagmanager("dm")
    gateway = await cluster.gateway("gw", [dagmanager])
    token = issue_token(SECRET.encode(), "test:sdk-e2e", SCOPES)
    async with AsyncGatewayServiceClient(
        gateway.url("public"), internal=gateway.url("internal"), token=token
    ) as client:
        yield client


def bars(first: int, count: int, base: float = 95.0) -> list[tuple[int, float]]:
    return [(START + 60 * i, base + i) for i in range(first, first + count)]


async def computed(runner: Runner, node_id: str, bucket: int) -> None:
    async def done() -> bool:
        assert runner.failure is None, runner.failure
        return bucket in CALLS[node_id]

    await eventually(done, what=f"{node_id} computed bucket {bucket}", within=WITHIN_S)


async def test_a_shared_node_computes_once_per_bar_and_both_strategies_get_every_output(
    cluster: Cluster, client: AsyncGatewayServiceClient, bus: RecordBus
) -> None:
    asset = cluster.namespace.asset
    price = StreamInput(tags=(asset, "price"), interval=60, period=3, name="price")
    ma = Node(input=price, compute_fn=mean, period=3, name="ma3", tags=(asset,))
    signal_a = Node(input=ma, compute_fn=above_100, period=1, name="above", tags=(asset,))
    signal_b = Node(input=ma, compute_fn=doubled, period=1, name="doubled", tags=(asset,))
    group = f"test-{cluster.namespace.unique}"
    runners: list[Runner] = []
    try:
        first = await submit(Strategy("e2e-a", [signal_a]), client)
        assert first.plan.run == {ma.node_id, signal_a.node_id}
        runner_a = Runner(first.plan, bus, group=f"{group}-a")
        runners.append(runner_a)
        await runner_a.start()
        await runner_a.feed(price, bars(0, BARS // 2))
        await computed(runner_a, signal_a.node_id, START + 60 * (BARS // 2 - 1))

        second = await submit(Strategy("e2e-b", [signal_b]), client)
        assert set(second.diff.reused_node_ids) == {price.node_id, ma.node_id}
        assert second.plan.run == {signal_b.node_id}
        assert second.plan.topics[ma.node_id] == first.plan.topics[ma.node_id]
        runner_b = Runner(second.plan, bus, group=f"{group}-b")
        runners.append(runner_b)
        await runner_b.start()
        await runner_a.feed(price, bars(BARS // 2, BARS - BARS // 2))
        last = START + 60 * (BARS - 1)
        await computed(runner_a, signal_a.node_id, last)
        await computed(runner_b, signal_b.node_id, last)
    finally:
        for runner in runners:
            await runner.stop()

    every_bar = [START + 60 * i for i in range(BARS)]
    assert CALLS[ma.node_id] == every_bar  # once per bar, though two strategies consume it
    assert sorted(CALLS[signal_a.node_id]) == every_bar
    assert sorted(CALLS[signal_b.node_id]) == every_bar
    for node, plan in ((signal_a, first.plan), (signal_b, second.plan)):
        outputs = await bus.read(plan.topics[node.node_id])
        keys = {dedupe_key(d.record) for d in outputs}
        assert len(keys) == len(outputs)  # nothing produced twice
        assert sorted(d.record.bucket_ts.seconds for d in outputs) == every_bar


async def test_a_running_tag_query_picks_up_a_queue_created_after_it_started(
    cluster: Cluster, client: AsyncGatewayServiceClient, bus: RecordBus
) -> None:
    asset = cluster.namespace.asset
    btc = StreamInput(tags=(asset, "px"), interval=60, period=2, name="btc",
                      config={"symbol": "BTC"})  # fmt: skip
    eth = StreamInput(tags=(asset, "px"), interval=60, period=2, name="eth",
                      config={"symbol": "ETH"})  # fmt: skip
    query = TagQueryNode(query_tags=("px",), interval=60, period=2, compute_fn=gather,
                         tags=(asset,))  # fmt: skip
    sources = await submit(Strategy("e2e-btc", [btc]), client)
    btc_topic = sources.plan.topics[btc.node_id]
    following = await submit(Strategy("e2e-tq", [query]), client)
    assert following.plan.tag_inputs == {query.node_id: (btc_topic,)}
    runner = Runner(following.plan, bus, group=f"test-{cluster.namespace.unique}-tq")
    follower = TagQueryFollower(client, following.plan, runner, interval=0.1)
    await runner.start()
    follower.start()
    try:
        await bus.produce(btc_topic, [source_record(btc, ts, v) for ts, v in bars(0, 3)])

        async def saw_btc() -> bool:
            assert runner.failure is None, runner.failure
            return any(bucket == START + 120 for bucket, _ in SEEN[query.node_id])

        await eventually(saw_btc, what="the tag query computing from btc", within=WITHIN_S)
        assert all(set(seen) == {btc_topic} for _, seen in SEEN[query.node_id])

        # Created after the tag query's strategy started: no resubmission, no restart.
        added = await submit(Strategy("e2e-eth", [eth]), client)
        eth_topic = added.plan.topics[eth.node_id]
        await bus.produce(
            eth_topic, [source_record(eth, ts, v) for ts, v in bars(0, 6, base=1000.0)]
        )

        async def followed() -> bool:
            return eth_topic in follower.current[query.node_id]

        await eventually(followed, what="the follower finding the eth queue", within=WITHIN_S)
        # Buckets 0-2 were computed from btc alone and stay so (a bucket computes once); the
        # next ones wait for both inputs.
        await bus.produce(btc_topic, [source_record(btc, ts, v) for ts, v in bars(3, 3)])

        async def saw_eth() -> bool:
            assert runner.failure is None, runner.failure
            return any(b == START + 300 and eth_topic in seen for b, seen in SEEN[query.node_id])

        await eventually(saw_eth, what="the tag query computing from eth", within=WITHIN_S)
    finally:
        await follower.stop()
        await runner.stop()
    assert follower.current == {query.node_id: tuple(sorted((btc_topic, eth_topic)))}
    with_eth = [(bucket, seen) for bucket, seen in SEEN[query.node_id] if eth_topic in seen]
    assert [bucket for bucket, _ in with_eth] == [START + 60 * i for i in (3, 4, 5)]
    for bucket, seen in with_eth:
        index = (bucket - START) // 60
        assert seen == {btc_topic: 95.0 + index, eth_topic: 1000.0 + index}


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    CALLS.clear()
    SEEN.clear()
