"""Topic naming and its collision growth (domain.md §2.6), as pure functions."""

from __future__ import annotations

import itertools

import pytest

from qmtl.dag.v1 import dag_pb2
from qmtl.runtime.topicadmin import MAX_TOPIC_NAME_LENGTH, check_topic_name
from qmtl.services.dag_manager.diff import hash_segments, topic_candidates
from qmtl.services.dag_manager.diff.naming import (
    MAX_COLLISION_SUFFIX,
    TopicNamesExhausted,
    asset_of,
    first_free,
    version_of,
)
from tests.dag_manager.dag_builders import make_node

NULL_HASH = "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"
INDICATOR_ID = "blake3:abcdef1234" + "5" * 54


def test_golden_source_and_indicator_names() -> None:
    src = make_node(
        "StreamInput",
        tags=["BTC", "price"],
        interval=60,
        period=30,
        params={},
        schema_compat_id="ohlcv-v1",
        code_hash=NULL_HASH,
    )
    ma5 = make_node(
        "Node",
        tags=["BTC"],
        interval=60,
        period=5,
        params={"window": 5, "field": "close"},
        deps=[src.node_id],
        schema_compat_id="ind-v1",
        code_hash="code-ma",
    )
    assert src.node_id.startswith("blake3:dc941620")
    names = (
        next(
            topic_candidates(
                tags=n.tags, node_type=n.spec.node_type, node_id=n.node_id, version="v1"
            )
        )
        for n in (src, ma5)
    )
    assert list(names) == ["btc_StreamInput_dc941620_v1", "btc_Node_1d38921a_v1"]


def test_hash_grows_by_two_then_takes_numbered_suffixes() -> None:
    digest = INDICATOR_ID.removeprefix("blake3:")
    segments = list(hash_segments(digest))
    lengths = [len(s) for s in segments[:29]]
    assert lengths == list(range(8, 65, 2))
    assert segments[29:31] == [f"{digest}-1", f"{digest}-2"]
    assert segments[-1] == f"{digest}-{MAX_COLLISION_SUFFIX}"
    assert len(segments) == 29 + MAX_COLLISION_SUFFIX


def test_domain_example_growth_from_eight_to_ten_digits() -> None:
    names = topic_candidates(
        tags=["BTC"], node_type="Indicator", node_id=INDICATOR_ID, version="v1"
    )
    assert list(itertools.islice(names, 2)) == [
        "btc_Indicator_abcdef12_v1",
        "btc_Indicator_abcdef1234_v1",
    ]


def test_first_free_skips_taken_names_and_continues_from_there() -> None:
    candidates = topic_candidates(tags=[], node_type="Node", node_id=INDICATOR_ID, version="v1")
    name, rest = first_free(candidates, {"asset_Node_abcdef12_v1"})
    assert name == "asset_Node_abcdef1234_v1"
    assert next(rest) == "asset_Node_abcdef123455_v1"
    with pytest.raises(TopicNamesExhausted):
        first_free(iter(["a", "b"]), {"a", "b"})


def test_dry_run_names_carry_the_sim_suffix() -> None:
    name = next(
        topic_candidates(
            tags=["ETH"], node_type="Node", node_id=INDICATOR_ID, version="v2", dry_run=True
        )
    )
    assert name == "eth_Node_abcdef12_v2_sim"


@pytest.mark.parametrize(
    ("tags", "asset"),
    [(["BTC", "price"], "btc"), (["..", "Eth.Usd"], "ethusd"), ([], "asset"), (["a_b-C"], "a_b-c")],
)
def test_asset_is_the_first_tag_with_something_left(tags: list[str], asset: str) -> None:
    assert asset_of(tags) == asset


@pytest.mark.parametrize(
    ("meta", "version"),
    [
        (dag_pb2.DagMeta(version="2.3.0+build/7", strategy_version="9"), "2.3.0-build-7"),
        (dag_pb2.DagMeta(strategy_version="1.0", build_version="abc"), "1.0"),
        (dag_pb2.DagMeta(build_version="sha:1f"), "sha-1f"),
        (dag_pb2.DagMeta(), "v1"),
    ],
)
def test_version_falls_back_and_is_normalised(meta: dag_pb2.DagMeta, version: str) -> None:
    assert version_of(meta) == version


def test_the_longest_possible_name_is_a_legal_kafka_topic() -> None:
    names = list(
        topic_candidates(
            tags=["x" * 100],
            node_type="T/" * 100,
            node_id="blake3:" + "f" * 64,
            version=version_of(dag_pb2.DagMeta(version="v" * 300)),
            dry_run=True,
        )
    )
    longest = names[-1]
    assert max(len(name) for name in names) == len(longest)
    assert longest.endswith(f"-{MAX_COLLISION_SUFFIX}_{'v' * 64}_sim")
    assert len(longest) <= MAX_TOPIC_NAME_LENGTH
    check_topic_name(longest)
    assert longest.split("_")[1] == "T-" * 32
