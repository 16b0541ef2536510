"""TagQueryFollower: asks GetQueuesByTag with each TagQueryNode's tags, interval and match mode,
hands the runner a changed set once (sorted, no global queue, not its own output), keeps the
last set when a lookup fails; against `qmtl gateway --backend memory`, a TagQueryNode that was
submitted first picks up a queue another strategy creates afterwards, while following in the
background."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio

from qmtl.common.v1 import match_mode_pb2
from qmtl.dag.v1 import queue_pb2
from qmtl.gateway.v1 import queue_messages_pb2
from qmtl.gateway.v1.gateway_service_client import AsyncGatewayServiceClient
from qmtl.runtime.auth import issue_token
from qmtl.runtime.errors import QmtlError
from qmtl.services.sdk.authoring import Node, StreamInput, TagQueryNode
from qmtl.services.sdk.client import submit
from qmtl.services.sdk.plan import plan_from_diff
from qmtl.services.sdk.runner.model import RunPlan
from qmtl.services.sdk.strategy import Strategy
from qmtl.services.sdk.tagqueries import TagQueryFollower
from tests.polling import eventually
from tests.serve.service_process import ServiceProcess

SECRET = "sdk-tagqueries-test-secret"
pytestmark = pytest.mark.asyncio(loop_scope="module")


def correlate(view: Any) -> Any:
    return None


def scale(view: Any) -> Any:
    return None


class Recording:
    """The runner's side: every update_tag_inputs call, in order."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, tuple[str, ...]]] = []

    def update_tag_inputs(self, node_id: str, topics: Sequence[str]) -> None:
        self.updates.append((node_id, tuple(topics)))


class Lookup:
    """GetQueuesByTag answering whatever `queues` holds now; `fail` makes it raise."""

    def __init__(self) -> None:
        self.queues: list[queue_pb2.QueueDescriptor] = []
        self.requests: list[queue_messages_pb2.GetQueuesByTagRequest] = []
        self.fail = False

    async def get_queues_by_tag(
        self,
        request: queue_messages_pb2.GetQueuesByTagRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the generated client's API
    ) -> queue_messages_pb2.GetQueuesByTagResponse:
        self.requests.append(request)
        if self.fail:
            raise QmtlError.unavailable("gateway down")
        return queue_messages_pb2.GetQueuesByTagResponse(queues=self.queues)


def plan_of(query: TagQueryNode, initial: tuple[str, ...] = ()) -> RunPlan:
    strategy = Strategy("tq", [query])
    return RunPlan(
        strategy=strategy,
        topics={query.node_id: "own_topic"},
        run=frozenset({query.node_id}),
        tag_inputs={query.node_id: initial},
    )


def queue(name: str, node_id: str = "blake3:x", *, is_global: bool = False) -> Any:
    return queue_pb2.QueueDescriptor(queue=name, node_id=node_id, is_global=is_global)


async def test_a_changed_set_reaches_the_runner_once_filtered_and_sorted() -> None:
    query = TagQueryNode(query_tags=("btc", "price"), interval="1m", period=5,
                         match_mode="all", compute_fn=correlate)  # fmt: skip
    lookup, runner = Lookup(), Recording()
    follower = TagQueryFollower(lookup, plan_of(query, ("a_v1",)), runner, interval=0.01)
    lookup.queues = [queue("a_v1")]
    assert await follower.refresh() == {}  # what the plan already had: nothing to tell
    assert runner.updates == []
    lookup.queues = [
        queue("b_v1"),
        queue("a_v1"),
        queue("ops_v1", is_global=True),
        queue("own_topic", query.node_id),
    ]
    assert await follower.refresh() == {query.node_id: ("a_v1", "b_v1")}
    assert await follower.refresh() == {}
    assert runner.updates == [(query.node_id, ("a_v1", "b_v1"))]
    sent = lookup.requests[0]
    assert list(sent.tags) == ["btc", "price"]
    assert sent.interval == 60
    assert sent.match_mode == match_mode_pb2.MATCH_MODE_ALL


async def test_a_failed_lookup_keeps_the_last_set() -> None:
    query = TagQueryNode(query_tags=("eth",), interval=60, period=5, compute_fn=correlate)
    lookup, runner = Lookup(), Recording()
    follower = TagQueryFollower(lookup, plan_of(query, ("a_v1",)), runner)
    lookup.fail = True
    assert await follower.refresh() == {}
    assert follower.current == {query.node_id: ("a_v1",)}
    assert runner.updates == []
    assert lookup.requests[0].match_mode == match_mode_pb2.MATCH_MODE_ANY


async def test_a_plan_without_tag_queries_follows_nothing() -> None:
    price = StreamInput(tags=("x",), interval=60, period=2, name="price")
    strategy = Strategy("plain", [price])
    plan = RunPlan(strategy=strategy, topics={price.node_id: "t"}, run=frozenset(),
                   tag_inputs={})  # fmt: skip
    lookup = Lookup()
    follower = TagQueryFollower(lookup, plan, Recording(), interval=0.01)
    follower.start()
    assert await follower.refresh() == {}
    await follower.stop()
    assert lookup.requests == []


async def test_the_interval_must_be_positive() -> None:
    query = TagQueryNode(query_tags=("eth",), interval=60, period=5)
    with pytest.raises(ValueError, match="interval"):
        TagQueryFollower(Lookup(), plan_of(query), Recording(), interval=0)


# -- against the Gateway ---------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway() -> AsyncIterator[ServiceProcess]:
    process = ServiceProcess("gateway", "--backend", "memory", "--public-port", "0",
                             "--internal-port", "0", env={"QMTL_TOKEN_SECRET": SECRET})  # fmt: skip
    try:
        await process.start()
        await process.wait_ready()
        yield process
        process.check_alive()
        assert "Traceback" not in process.logs(), process.logs()
    finally:
        await process.close()


async def test_a_tag_query_picks_up_a_queue_created_after_it_started(
    gateway: ServiceProcess,
) -> None:
    token = issue_token(SECRET.encode(), "test:sdk", ("strategies:submit", "strategies:read",
                                                      "queues:read"))  # fmt: skip
    first = StreamInput(tags=("tqfollow", "price"), interval=60, period=5, name="btc",
                        config={"symbol": "BTC"})  # fmt: skip
    later = StreamInput(tags=("tqfollow", "price"), interval=60, period=5, name="eth",
                        config={"symbol": "ETH"})  # fmt: skip
    other_interval = StreamInput(tags=("tqfollow",), interval=300, period=5, name="slow",
                                 config={"symbol": "BTC5m"})  # fmt: skip
    query = TagQueryNode(query_tags=("tqfollow",), interval=60, period=5, compute_fn=correlate)
    consumer = Node(input=query, compute_fn=scale, period=1, name="scaled", tags=("tqfollow",))
    async with AsyncGatewayServiceClient(
        gateway.url("public"), internal=gateway.url("internal"), token=token
    ) as client:
        sources = await submit(Strategy("tq-sources", [first]), client, wait=10)
        following = await submit(Strategy("tq-follower", [consumer]), client, wait=10)
        first_topic = sources.plan.topics[first.node_id]
        assert following.plan.tag_inputs == {query.node_id: (first_topic,)}
        runner = Recording()
        follower = TagQueryFollower(client, following.plan, runner, interval=0.05)
        follower.start()
        try:
            added = await submit(Strategy("tq-later", [later, other_interval]), client, wait=10)
            later_topic = added.plan.topics[later.node_id]

            async def picked_up() -> bool:
                return bool(runner.updates)

            await eventually(picked_up, what="the new queue handed to the runner", within=10,
                             watch=[gateway])  # fmt: skip
        finally:
            await follower.stop()
    # Its own consumer carries the tag too, at the same interval: never its own input.
    assert runner.updates == [(query.node_id, tuple(sorted((first_topic, later_topic))))]
    assert plan_from_diff(Strategy("tq-follower", [consumer]), following.diff).run == {
        query.node_id,
        consumer.node_id,
    }
