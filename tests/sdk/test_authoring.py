"""Authoring: what each node kind is, the checks that refuse a node (naming it), and how a
Strategy collects nodes."""

from __future__ import annotations

from typing import Any

import pytest

from qmtl.common.v1 import match_mode_pb2
from qmtl.dag.v1 import node_pb2
from qmtl.services.sdk import AuthoringError, Node, Strategy, StreamInput, TagQueryNode

KIND = node_pb2.NodeKind


def fast(view: Any) -> None:
    return None


def slow(view: Any) -> None:
    return None


def prices(**changes: Any) -> StreamInput:
    fields: dict[str, Any] = {"tags": ["BTC", "price"], "interval": "1m", "period": 30}
    return StreamInput(**(fields | changes))


# -- node kinds --------------------------------------------------------------------------------


def test_a_stream_input_is_a_source_without_code() -> None:
    src = prices(config={"symbol": "BTC"})
    assert (src.node_type, src.name, src.interval, src.period) == (
        "StreamInput",
        "stream_input",
        60,
        30,
    )
    assert (src.inputs, src.compute_fn, src.tags) == ((), None, ("BTC", "price"))
    proto = src.to_proto()
    assert proto.kind == KIND.NODE_KIND_SOURCE
    assert proto.node_id == src.node_id
    assert proto.spec.params_json == '{"symbol":"BTC"}'
    assert list(proto.spec.dependencies) == []


def test_a_node_computes_from_its_inputs_and_inherits_their_interval() -> None:
    src = prices()
    node = Node(input=src, compute_fn=fast, period=5, config={"window": 5})
    assert (node.node_type, node.name, node.interval, node.inputs) == ("Node", "fast", 60, (src,))
    assert node.compute_fn is fast
    proto = node.to_proto()
    assert proto.kind == KIND.NODE_KIND_PROCESSING
    assert list(proto.spec.dependencies) == [src.node_id]
    assert proto.name == "fast"


def test_a_node_keeps_its_inputs_in_the_order_given() -> None:
    src = prices()
    a = Node(input=src, compute_fn=fast, period=2)
    b = Node(input=src, compute_fn=slow, period=3)
    node = Node(input=[b, a], compute_fn=fast, period=1)
    assert node.inputs == (b, a)
    assert list(node.to_proto().spec.dependencies) == [b.node_id, a.node_id]


def test_a_node_over_inputs_of_different_intervals_names_its_own() -> None:
    minute, hour = prices(), prices(interval="1h", name="hourly")
    with pytest.raises(
        AuthoringError, match=r"Node 'mix': interval: the inputs have intervals \[60, 3600\]"
    ):
        Node(input=[minute, hour], compute_fn=fast, period=1, name="mix")
    assert Node(input=[minute, hour], compute_fn=fast, period=1, interval="1h").interval == 3600


def test_a_tag_query_node_carries_its_query_and_no_static_inputs() -> None:
    tq = TagQueryNode(query_tags=["price", "BTC"], interval="1m", period=24, match_mode="all")
    assert (tq.node_type, tq.name, tq.query_tags, tq.match_mode) == (
        "TagQueryNode",
        "tag_query",
        ("price", "BTC"),
        "all",
    )
    assert (tq.inputs, tq.tags, tq.compute_fn) == ((), (), None)
    proto = tq.to_proto()
    assert proto.kind == KIND.NODE_KIND_TAG_QUERY
    assert proto.spec.params_json == ""
    assert list(proto.spec.tag_query.tags) == ["price", "BTC"]
    assert proto.spec.tag_query.interval == proto.spec.interval == 60
    assert proto.spec.tag_query.match_mode == match_mode_pb2.MATCH_MODE_ALL


def test_a_tag_query_node_may_compute_and_tag_its_output() -> None:
    tq = TagQueryNode(query_tags=["price"], interval=60, period=2, compute_fn=slow, tags=["basket"])
    assert (tq.name, tq.tags, tq.compute_fn) == ("slow", ("basket",), slow)
    assert tq.node_id != TagQueryNode(query_tags=["price"], interval=60, period=2).node_id


def test_a_node_keeps_the_config_its_id_was_computed_from() -> None:
    config: dict[str, Any] = {"window": 5, "fields": ["close"]}
    node = Node(input=prices(), compute_fn=fast, period=5, config=config)
    before = node.node_id
    config["window"] = 6
    config["fields"].append("open")
    assert node.config == {"window": 5, "fields": ["close"]}
    assert node.to_proto().spec.params_json == '{"fields":["close"],"window":5}'
    assert node.node_id == before
    with pytest.raises(TypeError):
        node.config["window"] = 7  # type: ignore[index]


def test_node_ids_are_cached_and_protos_are_fresh() -> None:
    node = Node(input=prices(), compute_fn=fast, period=5)
    first = node.to_proto()
    first.name = "changed"
    assert node.to_proto().name == "fast"
    assert node.node_id == first.node_id


# -- refusals name the node --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tags": "BTC"}, r"StreamInput 'px': tags: must be a list of strings, got 'BTC'"),
        ({"tags": ["BTC/USD"]}, r"StreamInput 'px': tags: tag 'BTC/USD' must be 1-100 characters"),
        ({"tags": [""]}, r"tags: tag '' must be 1-100 characters"),
        ({"tags": ["x" * 101]}, r"tags: tag 'x{101}' must be 1-100 characters"),
        ({"tags": [7]}, r"tags: tag 7 must be"),
        ({"tags": ["a", "b", "a"]}, r"tags: tags must be unique, repeated: a"),
        ({"tags": [f"t{i}" for i in range(101)]}, r"tags: 101 tags, the limit is 100"),
        (
            {"config": {"x": float("nan")}},
            r"StreamInput 'px': config: Out of range float values are not JSON compliant",
        ),
        ({"config": {"x": object()}}, r"StreamInput 'px': config: object .* is not JSON data"),
        ({"config": [1, 2]}, r"StreamInput 'px': config: must be a mapping, got list"),
        ({"schema": "ohlcv"}, r"StreamInput 'px': schema: must be a mapping, got str"),
        ({"schema_compat_id": ""}, r"StreamInput 'px': schema_compat_id: must be a non-empty"),
        ({"schema_compat_id": " v1"}, r"schema_compat_id: must be a non-empty string without"),
        ({"schema_compat_id": "a|b"}, r"StreamInput 'px': schema_compat_id: must not contain '\|'"),
        ({"config": {"x": "\ud800"}}, r"StreamInput 'px': config: .*surrogates not allowed"),
        ({"name": ""}, r"StreamInput: name must be a non-empty printable string, got ''"),
        ({"name": "a\nb"}, r"StreamInput: name must be a non-empty printable string"),
    ],
)
def test_a_bad_source_is_refused_naming_it(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(AuthoringError, match=message):
        prices(**({"name": "px"} | changes))


def test_an_authoring_error_is_a_value_error() -> None:
    assert issubclass(AuthoringError, ValueError)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input": []}, r"Node 'fast': input: a Node needs at least one input"),
        (
            {"input": "prices"},
            r"Node 'fast': input: 'p' is not a StreamInput, Node or TagQueryNode",
        ),
        ({"input": 5}, r"Node 'fast': input: must be a node or a list of nodes, got 5"),
        ({"compute_fn": "fast", "name": "sig"}, r"Node 'sig': compute_fn: must be callable"),
        ({"period": 0}, r"Node 'fast': period: must be 1\.\.10000 bars, got 0"),
        ({"interval": "2d"}, r"Node 'fast': interval: '2d' is not"),
        ({"code_hash": ""}, r"Node 'fast': code_hash: must be a non-empty string"),
        ({"code_hash": "v1|x"}, r"Node 'fast': code_hash: must not contain '\|', got 'v1\|x'"),
    ],
)
def test_a_bad_node_is_refused_naming_it(changes: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"input": prices(), "compute_fn": fast, "period": 5}
    with pytest.raises(AuthoringError, match=message):
        Node(**(fields | changes))


def test_the_same_input_twice_is_refused() -> None:
    src = prices()
    with pytest.raises(AuthoringError, match=r"Node 'fast': input: the same input is given twice"):
        Node(input=[src, src], compute_fn=fast, period=1)
    twin = prices(name="twin")  # another object, the same node id
    with pytest.raises(AuthoringError, match="the same input is given twice"):
        Node(input=[src, twin], compute_fn=fast, period=1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"query_tags": []}, r"TagQueryNode 'tq': query_tags: must name at least one tag"),
        ({"query_tags": ["BTC", "BTC"]}, r"query_tags: tags must be unique, repeated: BTC"),
        ({"query_tags": ["a b"]}, r"query_tags: tag 'a b' must be 1-100 characters"),
        ({"match_mode": "some"}, r"TagQueryNode 'tq': match_mode: must be 'any' or 'all'"),
        ({"interval": 86_401}, r"TagQueryNode 'tq': interval: must be 1\.\.86400"),
        ({"period": 10_001}, r"TagQueryNode 'tq': period: must be 1\.\.10000"),
        ({"compute_fn": 3}, r"TagQueryNode 'tq': compute_fn: must be callable"),
    ],
)
def test_a_bad_tag_query_is_refused_naming_it(changes: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"query_tags": ["BTC"], "interval": 60, "period": 5, "name": "tq"}
    with pytest.raises(AuthoringError, match=message):
        TagQueryNode(**(fields | changes))


# -- Strategy ----------------------------------------------------------------------------------


def graph() -> tuple[StreamInput, Node, Node, Node]:
    src = prices()
    a = Node(input=src, compute_fn=fast, period=5, config={"w": 5})
    b = Node(input=src, compute_fn=slow, period=20, config={"w": 20})
    sig = Node(input=[a, b], compute_fn=fast, period=1, name="sig")
    return src, a, b, sig


def test_adding_a_node_adds_what_it_reads_inputs_first() -> None:
    src, a, b, sig = graph()
    strategy = Strategy("cross", [sig])
    assert strategy.nodes == (src, a, b, sig)
    assert [strategy.by_id(n.node_id) for n in (src, a, b, sig)] == [src, a, b, sig]


def test_the_order_is_the_order_of_adding_and_stable() -> None:
    src, a, b, sig = graph()
    strategy = Strategy("cross")
    strategy.add(b)
    strategy.add(sig, a, src)  # already present: nothing moves
    assert strategy.nodes == (src, b, a, sig)
    again = Strategy("cross")
    again.add(b)
    again.add(sig)
    assert again.nodes == strategy.nodes


def test_every_node_comes_after_its_inputs() -> None:
    src, _, _, sig = graph()
    tq = TagQueryNode(query_tags=["price"], interval=60, period=3)
    top = Node(input=[sig, tq, src], compute_fn=slow, period=1, name="top")
    strategy = Strategy("deep", [top])
    position = {node.node_id: i for i, node in enumerate(strategy.nodes)}
    for node in strategy.nodes:
        assert all(position[item.node_id] < position[node.node_id] for item in node.inputs)
    assert len(strategy.nodes) == 6


def test_a_long_chain_does_not_recurse() -> None:
    node: StreamInput | Node = prices()
    for step in range(3_000):
        node = Node(input=node, compute_fn=fast, period=1, config={"step": step})
    assert len(Strategy("chain", [node]).nodes) == 3_001


def test_the_same_node_built_twice_is_one_node() -> None:
    strategy = Strategy("s", [prices(), prices()])
    assert len(strategy.nodes) == 1


def test_two_different_nodes_with_one_id_are_refused() -> None:
    strategy = Strategy("s", [prices()])
    with pytest.raises(
        AuthoringError,
        match=r"Strategy 's': StreamInput 'other' has the id .* of the already added "
        r"StreamInput 'stream_input'",
    ):
        strategy.add(prices(name="other"))


def test_by_id_of_an_unknown_node_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="strategy 's' has no node blake3:00"):
        Strategy("s", [prices()]).by_id("blake3:00")


@pytest.mark.parametrize(
    ("name", "nodes", "version", "message"),
    [
        ("", (), "v1", r"Strategy: name must be a non-empty string"),
        ("s", (), "v 1", r"Strategy 's': version must be 1-64 characters of \[A-Za-z0-9._-\]"),
        ("s", (), "", r"version must be"),
        ("s", ("not a node",), "v1", r"Strategy 's': 'not a node' is not a StreamInput"),
    ],
)
def test_a_bad_strategy_is_refused(name: str, nodes: Any, version: str, message: str) -> None:
    with pytest.raises(AuthoringError, match=message):
        Strategy(name, nodes, version=version)


def test_an_empty_strategy_has_no_dag() -> None:
    with pytest.raises(AuthoringError, match="Strategy 'empty': has no nodes"):
        Strategy("empty").to_dag()
