"""Strategy.to_dag(): the DAG the Gateway and the DAG Manager validate (validate_dag accepts
every DAG the SDK builds), and `qmtl node-id` computes the same ids and checksum from its
proto3 JSON."""

from __future__ import annotations

import contextlib
import inspect
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.dag.v1 import dag_pb2
from qmtl.runtime import nodeid
from qmtl.runtime.dag_validation import DagLimits, validate_dag
from qmtl.services.sdk import (
    AuthoringError,
    Node,
    NodeLike,
    Strategy,
    StreamInput,
    TagQueryNode,
    code_hash,
)
from tests.sdk.test_hashes import golden_strategy, tag_query
from tests.unit.test_nodeid import MA5_ID, MA20_ID, SIG_ID, SRC_ID, TQ_ID

QMTL = Path(sys.executable).with_name("qmtl")


def compute(view: Any) -> None:
    return None


def accepted(strategy: Strategy) -> dag_pb2.Dag:
    """The strategy's DAG, after the platform's own validation accepted it as submitted."""
    dag = strategy.to_dag()
    checked = validate_dag(dag, strategy.node_ids_crc32(), DagLimits())
    assert [p.node_id for p in checked.nodes] == [n.node_id for n in strategy.nodes]
    assert checked.external == {}
    return dag


def test_the_dag_has_the_layout_the_platform_expects() -> None:
    strategy = golden_strategy()
    strategy.add(tag_query())
    dag = accepted(strategy)
    assert dag.schema_version == "v1"
    assert dag.meta.version == "v1"
    assert [n.node_id for n in dag.nodes] == [SRC_ID, MA5_ID, MA20_ID, SIG_ID, TQ_ID]
    assert list(dag.edges) == []  # derived by the platform from the dependencies
    assert nodeid.node_ids(dag.nodes) == [n.node_id for n in dag.nodes]
    assert [n.to_proto() for n in strategy.nodes] == list(dag.nodes)


def test_the_version_is_the_dags() -> None:
    strategy = Strategy(
        "s", [StreamInput(tags=["BTC"], interval=60, period=1)], version="2.3.0-rc1"
    )
    assert accepted(strategy).meta.version == "2.3.0-rc1"


def test_defaults_alone_make_an_accepted_dag() -> None:
    """Nothing pinned: schema_compat_id and code_hash come from the helpers."""
    src = StreamInput(tags=["ETH"], interval="5m", period=12)
    node = Node(input=src, compute_fn=compute, period=12)
    tq = TagQueryNode(query_tags=["ETH", "price"], interval="5m", period=2, match_mode="all")
    mixed = Node(input=[node, tq], compute_fn=compute, period=1, tags=["signal"])
    accepted(Strategy("defaults", [mixed]))


def test_world_keys_in_a_config_are_accepted_and_kept_out_of_the_id() -> None:
    src = StreamInput(tags=["BTC"], interval=60, period=1)
    plain = Node(input=src, compute_fn=compute, period=1, config={"w": 1})
    worldly = Node(input=src, compute_fn=compute, period=1, config={"w": 1, "world_id": "w"})
    assert plain.node_id == worldly.node_id
    dag = accepted(Strategy("s", [worldly]))
    assert '"world_id":"w"' in dag.nodes[1].spec.params_json


# -- any strategy the SDK builds is accepted ---------------------------------------------------

TAGS = st.lists(st.from_regex(r"[a-zA-Z0-9_.-]{1,12}", fullmatch=True), max_size=4, unique=True)
CONFIG = st.dictionaries(
    st.text(max_size=6),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    ),
    max_size=4,
)
INTERVAL = st.one_of(
    st.integers(1, 86_400), st.sampled_from(["1s", "90s", "1m", "15m", "1h", "24h"])
)
PERIOD = st.integers(1, 10_000)


@st.composite
def strategies(draw: st.DrawFn) -> Strategy:
    nodes: list[NodeLike] = []
    for index in range(draw(st.integers(1, 12))):
        kind = draw(
            st.sampled_from(["source", "node", "tag_query"]) if nodes else st.just("source")
        )
        if kind == "source":
            nodes.append(
                StreamInput(
                    tags=draw(TAGS),
                    interval=draw(INTERVAL),
                    period=draw(PERIOD),
                    config=draw(CONFIG),
                    name=f"src{index}",
                )
            )
        elif kind == "tag_query":
            nodes.append(
                TagQueryNode(
                    query_tags=draw(TAGS.filter(bool)),
                    interval=draw(INTERVAL),
                    period=draw(PERIOD),
                    match_mode=draw(st.sampled_from(["any", "all"])),
                )
            )
        else:
            inputs = draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=3, unique_by=id))
            if len({n.node_id for n in inputs}) < len(inputs):
                continue
            nodes.append(
                Node(
                    input=inputs,
                    compute_fn=compute,
                    period=draw(PERIOD),
                    interval=draw(INTERVAL),
                    config=draw(CONFIG),
                    tags=draw(TAGS),
                    code_hash=draw(st.none() | st.just("pinned")),
                )
            )
    strategy = Strategy("random")
    for node in nodes:
        # Two nodes with one id but other tags are refused by design.
        with contextlib.suppress(AuthoringError):
            strategy.add(node)
    return strategy


@settings(max_examples=150, deadline=None)
@given(strategies())
def test_every_dag_the_sdk_builds_passes_the_platforms_validation(strategy: Strategy) -> None:
    accepted(strategy)


# -- `qmtl node-id` agrees ---------------------------------------------------------------------


def node_id_cli(dag: dag_pb2.Dag, tmp_path: Path) -> list[str]:
    path = tmp_path / "dag.json"
    path.write_text(json_format.MessageToJson(dag), encoding="utf-8")
    done = subprocess.run(
        [str(QMTL), "node-id", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    return done.stdout.splitlines()


def test_qmtl_node_id_agrees_with_to_dag(tmp_path: Path) -> None:
    strategy = golden_strategy()
    strategy.add(tag_query(), tag_query(match_mode="all"))
    src = strategy.nodes[0]
    assert isinstance(src, StreamInput)
    strategy.add(
        Node(
            input=src,
            compute_fn=compute,
            period=3,
            config={"nested": {"b": [1, 2.5, None], "a": "é"}, "seed": 3},
            tags=["x"],
        )
    )
    lines = node_id_cli(strategy.to_dag(), tmp_path)
    assert lines == [n.node_id for n in strategy.nodes] + [f"crc32: {strategy.node_ids_crc32()}"]
    assert lines[:5] == [SRC_ID, MA5_ID, MA20_ID, SIG_ID, TQ_ID]


# -- docs/sdk.md -------------------------------------------------------------------------------

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def authoring_half() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    head, marker, _ = text.partition("\n## Running a strategy\n")
    assert marker, "docs/sdk.md lost its 'Running a strategy' section"
    return head


def test_the_guides_examples_build_a_strategy_the_platform_accepts() -> None:
    half = authoring_half()
    blocks = list(re.finditer(r"```python\n(.*?)```", half, flags=re.DOTALL))
    assert len(blocks) >= 3
    namespace: dict[str, Any] = {"__name__": "sdk_guide"}
    for block in blocks:
        # Padded to its line in the file, so inspect.getsource (code_hash) reads the guide.
        padding = "\n" * half.count("\n", 0, block.start(1))
        exec(compile(padding + block.group(1), str(GUIDE), "exec"), namespace)
    strategy = namespace["strategy"]
    assert [n.name for n in strategy.nodes] == ["btc_close", "ma5", "ma20", "signal"]
    accepted(strategy)
    dag = namespace["dag"]
    assert dag == strategy.to_dag()
    assert namespace["crc"] == nodeid.node_ids_crc32(n.node_id for n in dag.nodes)
    assert namespace["fixed"].code_hash == "ma-v1"
    ma5 = namespace["ma5"]
    assert ma5.code_hash == code_hash(namespace["moving_average"])
    assert "closes = view[price]" in inspect.getsource(namespace["moving_average"])
    accepted(Strategy("basket", [namespace["every_price"]]))


def test_the_guides_error_messages_are_the_sdks() -> None:
    shown = re.findall(r"^AuthoringError: (.*)$", authoring_half(), flags=re.MULTILINE)
    src = StreamInput(tags=["BTC"], interval=60, period=1)
    attempts: list[Callable[[], object]] = [
        lambda: Node(input=src, compute_fn=compute, period=0, name="ma5"),
        lambda: StreamInput(tags=["BTC"], interval="1d", period=1, name="btc_close"),
        lambda: TagQueryNode(query_tags=["BTC", "BTC"], interval=60, period=1),
        lambda: Node(input=[], compute_fn=compute, period=1, name="signal"),
    ]
    raised = []
    for attempt in attempts:
        with pytest.raises(AuthoringError) as caught:
            attempt()
        raised.append(str(caught.value))
    assert shown == raised
