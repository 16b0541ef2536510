"""plan_from_diff on hand-made DiffResults: reused nodes are consumed and never computed, new
nodes are computed (a TagQueryNode only with a compute function, a source never), every node
gets its topic, tag queries get their resolved topics minus global queues and their own
output's, and a diff that does not describe the strategy is a typed error naming the node."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from qmtl.common.v1 import error_code_pb2
from qmtl.dag.v1 import diff_result_pb2, queue_pb2
from qmtl.services.sdk.authoring import Node, StreamInput, TagQueryNode
from qmtl.services.sdk.plan import PlanError, plan_from_diff
from qmtl.services.sdk.strategy import Strategy


def mean(view: Any) -> Any:
    return None


def cross(view: Any) -> Any:
    return None


def spread(view: Any) -> Any:
    return None


def correlate(view: Any) -> Any:
    return None


def after_query(view: Any) -> Any:
    return None


PRICE = StreamInput(tags=("btc", "price"), interval="60s", period=20, name="price")
MA5 = Node(input=PRICE, compute_fn=mean, period=5, name="ma5", tags=("btc",))
MA20 = Node(input=PRICE, compute_fn=mean, period=20, name="ma20", tags=("btc",))
SIGNAL = Node(input=[MA5, MA20], compute_fn=cross, period=2, name="signal")
SPREAD = Node(input=[MA5, MA20], compute_fn=spread, period=1, name="spread")


def topic(node: Any) -> str:
    return f"btc_{node.node_type}_{node.name}_v1"


def diff_of(
    strategy: Strategy,
    *,
    reused: Iterable[Any] = (),
    tag_queries: dict[str, list[queue_pb2.QueueDescriptor]] | None = None,
    leave_out: Any = None,
) -> diff_result_pb2.DiffResult:
    reused_ids = {n.node_id for n in reused}
    diff = diff_result_pb2.DiffResult(strategy_id="s-1", version="v1")
    for node in strategy.nodes:
        if node is leave_out:
            continue
        diff.queue_map.queues[node.node_id].CopyFrom(
            queue_pb2.QueueDescriptor(queue=topic(node), node_id=node.node_id)
        )
        (diff.reused_node_ids if node.node_id in reused_ids else diff.new_node_ids).append(
            node.node_id
        )
    for node_id, queues in (tag_queries or {}).items():
        diff.queue_map.tag_queries[node_id].queues.extend(queues)
    return diff


def test_a_first_submission_computes_every_processing_node_and_feeds_the_source() -> None:
    strategy = Strategy("crossover", [SIGNAL])
    plan = plan_from_diff(strategy, diff_of(strategy))
    assert plan.strategy is strategy
    assert plan.run == {MA5.node_id, MA20.node_id, SIGNAL.node_id}
    assert PRICE.node_id not in plan.run  # fed by the user, never computed
    assert dict(plan.topics) == {n.node_id: topic(n) for n in (PRICE, MA5, MA20, SIGNAL)}
    assert dict(plan.tag_inputs) == {}


def test_reused_nodes_are_consumed_not_computed() -> None:
    strategy = Strategy("spread", [SPREAD])
    plan = plan_from_diff(strategy, diff_of(strategy, reused=(PRICE, MA5, MA20)))
    assert plan.run == {SPREAD.node_id}
    # Consumed from the topics the first strategy's process writes.
    assert plan.topics[MA5.node_id] == topic(MA5)
    assert plan.topics[MA20.node_id] == topic(MA20)


def test_everything_reused_runs_nothing() -> None:
    strategy = Strategy("crossover", [SIGNAL])
    plan = plan_from_diff(strategy, diff_of(strategy, reused=strategy.nodes))
    assert plan.run == frozenset()
    assert len(plan.topics) == 4


def descriptor(queue: str, node_id: str, *, is_global: bool = False) -> queue_pb2.QueueDescriptor:
    return queue_pb2.QueueDescriptor(queue=queue, node_id=node_id, is_global=is_global)


def test_a_tag_query_with_a_compute_function_runs_over_its_resolved_topics() -> None:
    query = TagQueryNode(query_tags=("price",), interval=60, period=10, compute_fn=correlate,
                         tags=("price",))  # fmt: skip
    consumer = Node(input=query, compute_fn=after_query, period=1, name="after", tags=("price",))
    strategy = Strategy("tq", [consumer])
    resolved = [
        descriptor("eth_StreamInput_b_v1", "blake3:eth"),
        descriptor("btc_StreamInput_a_v1", "blake3:btc"),
        descriptor("btc_StreamInput_a_v1", "blake3:btc"),  # listed twice: one input
        descriptor("ops_heartbeat_v1", "blake3:ops", is_global=True),  # infrastructure
        descriptor(topic(query), query.node_id),  # its own output carries the tag
        descriptor(topic(consumer), consumer.node_id),  # a consumer of it: would be a loop
    ]
    plan = plan_from_diff(strategy, diff_of(strategy, tag_queries={query.node_id: resolved}))
    assert plan.run == {query.node_id, consumer.node_id}
    assert plan.tag_inputs[query.node_id] == ("btc_StreamInput_a_v1", "eth_StreamInput_b_v1")


def test_a_tag_query_without_a_compute_function_is_not_computed() -> None:
    query = TagQueryNode(query_tags=("price",), interval=60, period=10, name="prices")
    consumer = Node(input=query, compute_fn=after_query, period=1, name="after")
    strategy = Strategy("tq", [consumer])
    plan = plan_from_diff(strategy, diff_of(strategy))
    assert plan.run == {consumer.node_id}
    # Not resolved yet: no input, nothing to consume until the follower finds one.
    assert plan.tag_inputs == {query.node_id: ()}


def test_a_reused_tag_query_is_not_computed_even_with_a_compute_function() -> None:
    query = TagQueryNode(query_tags=("price",), interval=60, period=10, compute_fn=correlate)
    strategy = Strategy("tq", [query])
    resolved = {query.node_id: [descriptor("btc_StreamInput_a_v1", "blake3:btc")]}
    plan = plan_from_diff(strategy, diff_of(strategy, reused=[query], tag_queries=resolved))
    assert plan.run == frozenset()
    assert plan.tag_inputs[query.node_id] == ("btc_StreamInput_a_v1",)


def test_a_node_without_a_queue_is_a_typed_error_naming_it() -> None:
    strategy = Strategy("crossover", [SIGNAL])
    with pytest.raises(PlanError) as caught:
        plan_from_diff(strategy, diff_of(strategy, leave_out=MA20))
    assert caught.value.code == error_code_pb2.ERROR_CODE_INVALID_ARGUMENT
    assert "'ma20'" in caught.value.message
    assert caught.value.details["node_id"] == MA20.node_id


def test_a_diff_of_another_dag_is_a_typed_error() -> None:
    strategy = Strategy("crossover", [SIGNAL])
    diff = diff_of(strategy)
    diff.new_node_ids.append("blake3:not-in-this-strategy")
    with pytest.raises(PlanError) as caught:
        plan_from_diff(strategy, diff)
    assert caught.value.details["node_ids"] == ["blake3:not-in-this-strategy"]
