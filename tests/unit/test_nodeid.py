"""qmtl.runtime.nodeid: the node-id rule of issue 10 §1 and the golden vectors of domain.md §2.3."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from qmtl.common.v1 import match_mode_pb2
from qmtl.dag.v1 import node_pb2, node_spec_pb2, tag_query_pb2
from qmtl.runtime import nodeid
from qmtl.runtime.errors import QmtlError

NodeSpec = node_spec_pb2.NodeSpec
TagQuery = tag_query_pb2.TagQuery
KIND = node_pb2.NodeKind
NULL_HASH = "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"
SRC_ID = "blake3:dc941620c68b57a337ef88ad1ac4f1567b6f214159aaab904467d46d211824a9"
MA5_ID = "blake3:1d38921a224ea463133720b6f76f693fadc8a920128307ad72b9eeb5530279a3"
MA20_ID = "blake3:0d36474bbb2fc92a942905da1abf0d9714f1d448317ce930a899498eac9194d3"
SIG_ID = "blake3:ce5e96fe32a5e7c6d116d33f865ec43fa438573a206ff0a9b31f8d6bae8cfb82"
TQ_ID = "blake3:abd3d40789fc657b5d8b1ce0297d0cdcca6d4203cf49e8e58624fca5dc77dc71"


def src(**changes: Any) -> NodeSpec:
    fields: dict[str, Any] = {
        "node_type": "StreamInput",
        "interval": 60,
        "period": 30,
        "params_json": "{}",
        "schema_compat_id": "ohlcv-v1",
        "code_hash": NULL_HASH,
    }
    return NodeSpec(**(fields | changes))


def ma5(**changes: Any) -> NodeSpec:
    fields: dict[str, Any] = {
        "node_type": "Node",
        "interval": 60,
        "period": 5,
        "params_json": '{"window":5,"field":"close"}',
        "dependencies": [SRC_ID],
        "schema_compat_id": "ind-v1",
        "code_hash": "code-ma",
    }
    return NodeSpec(**(fields | changes))


def ma20() -> NodeSpec:
    return ma5(period=20, params_json='{"field": "close", "window": 20}')


def sig(deps: list[str]) -> NodeSpec:
    return NodeSpec(
        node_type="Node",
        interval=60,
        period=1,
        params_json='{"threshold":0.0}',
        dependencies=deps,
        schema_compat_id="sig-v1",
        code_hash="code-sig",
    )


def tq(**changes: Any) -> NodeSpec:
    fields: dict[str, Any] = {
        "node_type": "TagQueryNode",
        "interval": 60,
        "period": 24,
        "schema_compat_id": "tq-v1",
        "code_hash": NULL_HASH,
        "tag_query": TagQuery(
            tags=["price", "BTC", "price"], match_mode=match_mode_pb2.MATCH_MODE_ANY, interval=60
        ),
    }
    return NodeSpec(**(fields | changes))


def params_of(spec: NodeSpec, kind: int = KIND.NODE_KIND_UNSPECIFIED) -> str:
    return nodeid.canonical_bytes(spec, kind=kind).decode().split("|")[3]


def rejected(spec: NodeSpec, *, index: int = 0, kind: int = 0) -> QmtlError:
    with pytest.raises(QmtlError) as caught:
        nodeid.compute_node_id(spec, kind=kind, index=index)
    return caught.value


# --- golden vectors (domain.md §2.3) ---------------------------------------------------------


def test_golden_vectors() -> None:
    assert nodeid.canonical_bytes(src()) == f"StreamInput|60|30|{{}}||ohlcv-v1|{NULL_HASH}".encode()
    assert nodeid.compute_node_id(src()) == SRC_ID
    assert nodeid.compute_node_id(ma5()) == MA5_ID
    assert nodeid.compute_node_id(ma20()) == MA20_ID
    assert nodeid.compute_node_id(sig([MA20_ID, MA5_ID])) == SIG_ID
    assert nodeid.compute_node_id(sig([MA5_ID, MA20_ID])) == SIG_ID
    assert nodeid.compute_node_id(tq(), kind=KIND.NODE_KIND_TAG_QUERY) == TQ_ID
    assert nodeid.compute_node_id(tq()) == TQ_ID  # kind unset: node_type decides


def test_golden_tag_query_variants() -> None:
    assert params_of(tq()) == '{"interval":60,"match_mode":"any","query_tags":["BTC","price"]}'
    all_mode = tq()
    all_mode.tag_query.match_mode = match_mode_pb2.MATCH_MODE_ALL
    assert nodeid.compute_node_id(all_mode) == (
        "blake3:d3c6fc0777199fa6397dcf4c8be946dbe8db5f699b5302bafb9179f98a0f0467"
    )
    assert nodeid.compute_node_id(tq(period=48)) == (
        "blake3:90b0cd3d785ab2147e73d17a58b1f371ebf861151835efdbe6f6bbad9a138c34"
    )


def test_golden_ma5_variants() -> None:
    assert nodeid.compute_node_id(ma5(code_hash="code-ma-v2")) == (
        "blake3:2d6f76633a5024ad92d480d05f5bc10988b31daafeb0870f07dfa715e7bc35cb"
    )
    assert nodeid.compute_node_id(ma5(schema_compat_id="ind-v2")) == (
        "blake3:47689116ac8ef6e7719cc7b151540cbfab42e23452d2c95463e0d5521fe21768"
    )
    with_world = ma5(params_json='{"seed":7,"field":"close","world_id":"w1","window":5}')
    assert nodeid.compute_node_id(with_world) == MA5_ID
    node = node_pb2.Node(spec=ma5(), name="other", tags=["x"], schema_hash="s", node_id="junk")
    assert nodeid.node_id(node) == MA5_ID


def test_golden_crc32() -> None:
    ids = [SRC_ID, MA5_ID, MA20_ID, SIG_ID]
    assert nodeid.node_ids_crc32(ids) == 3808858857
    assert nodeid.node_ids_crc32([*ids, TQ_ID]) == 220170483


# --- params ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "world",
        "WORLD_ID",
        "world_ids",
        "Execution_World",
        "execution_domain",
        "domain",
        "DOMAINS",
        "as_of",
        "partition",
        "dataset_fingerprint",
        "TimeStamp",
        "seed",
        "random_state",
        "ENV",
        "env_",
        "env_region",
        "ENV_Anything",
    ],
)
def test_excluded_keys_dropped_at_every_level(key: str) -> None:
    params = f'{{"{key}":1,"a":{{"{key}":2,"b":[{{"{key}":3,"c":4}}]}}}}'
    assert params_of(ma5(params_json=params)) == '{"a":{"b":[{"c":4}]}}'


def test_keys_that_only_resemble_excluded_ones_are_kept() -> None:
    params = '{"environment":1,"my_seed":2,"worlds":3,"xenv_a":4}'
    assert params_of(ma5(params_json=params)) == params


def test_params_sorted_compact_non_ascii_kept() -> None:
    params = '{ "z" : 1, "a" : {"y": "é€", "b": [2, 1]} }'
    assert params_of(ma5(params_json=params)) == '{"a":{"b":[2,1],"y":"é€"},"z":1}'


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("5", "5"),
        ("0.0", "0.0"),
        ("-0.0", "-0.0"),
        ("1e2", "100.0"),
        ("1.50", "1.5"),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
        ("0.1", "0.1"),
        ("true", "true"),
        ("null", "null"),
    ],
)
def test_number_spelling_is_python_json_dumps(raw: str, canonical: str) -> None:
    assert params_of(ma5(params_json=f'{{"v":{raw}}}')) == f'{{"v":{canonical}}}'


def test_empty_params_is_null_and_empty_object_is_braces() -> None:
    assert params_of(ma5(params_json="")) == "null"
    assert params_of(ma5(params_json="{}")) == "{}"
    assert params_of(ma5(params_json='{"seed":1}')) == "{}"


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ('{"v":NaN}', "NaN"),
        ('{"v":Infinity}', "Infinity"),
        ('{"v":[-Infinity]}', "-Infinity"),
        ('{"v":1e400}', "out of range"),
        ('{"a":1,"a":2}', "duplicate key 'a'"),
        ('{"x":{"seed":1,"seed":2}}', "duplicate key 'seed'"),
        ('{"a":', "not valid JSON"),
        ('{"a":"\\ud800"}', "surrogate"),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_bad_params_rejected_with_index_and_field(params: str, problem: str) -> None:
    error = rejected(ma5(params_json=params), index=3)
    assert error.wire_code == "E_VALIDATION"
    assert error.details == {"index": 3, "field": "spec.params_json"}
    assert problem in error.message
    assert error.message.startswith("node 3: spec.params_json: ")


# --- tag queries -----------------------------------------------------------------------------


def test_tag_query_interval_falls_back_to_query_then_null() -> None:
    assert params_of(tq(interval=0)).startswith('{"interval":60,')
    only_node = tq(tag_query=TagQuery(tags=["b", "a"]))
    assert params_of(only_node) == '{"interval":60,"match_mode":"any","query_tags":["a","b"]}'
    neither = tq(interval=0, tag_query=TagQuery(tags=["a"]))
    assert params_of(neither) == '{"interval":null,"match_mode":"any","query_tags":["a"]}'
    no_query = tq(interval=0, tag_query=None)
    assert params_of(no_query) == '{"interval":null,"match_mode":"any","query_tags":[]}'


def test_tag_query_interval_mismatch_is_a_validation_error() -> None:
    error = rejected(tq(interval=300), index=4)
    assert error.wire_code == "E_VALIDATION"
    assert error.details == {"index": 4, "field": "spec.tag_query.interval"}


def test_tag_query_params_json_must_be_empty() -> None:
    error = rejected(tq(params_json="{}"), index=1)
    assert error.wire_code == "E_VALIDATION"
    assert error.details == {"index": 1, "field": "spec.params_json"}


def test_kind_decides_whether_a_node_is_a_tag_query() -> None:
    # A TAG_QUERY kind hashes the tag query whatever the node_type says...
    renamed = tq(node_type="MyQuery")
    assert params_of(renamed, KIND.NODE_KIND_TAG_QUERY).startswith('{"interval":60,')
    # ...and a set non-tag-query kind hashes params_json even for node_type TagQueryNode.
    assert params_of(tq(), KIND.NODE_KIND_PROCESSING) == "null"
    assert nodeid.is_tag_query(KIND.NODE_KIND_UNSPECIFIED, "TagQueryNode")
    assert not nodeid.is_tag_query(KIND.NODE_KIND_UNSPECIFIED, "Node")


def test_tag_query_match_mode_unspecified_is_any() -> None:
    unspecified = tq(tag_query=TagQuery(tags=["price", "BTC"], interval=60))
    assert nodeid.compute_node_id(unspecified) == TQ_ID


# --- deps, schema_compat_id, crc32 -----------------------------------------------------------


def test_deps_sorted_and_empty_ones_dropped() -> None:
    spec = ma5(dependencies=["b", "", "a", "c"])
    assert nodeid.canonical_bytes(spec).decode().split("|")[4] == "a,b,c"
    assert nodeid.compute_node_id(ma5(dependencies=["", SRC_ID, ""])) == MA5_ID


def test_schema_compat_id_falls_back_to_schema_id() -> None:
    assert nodeid.compute_node_id(ma5(schema_compat_id="", schema_id="ind-v1")) == MA5_ID
    assert nodeid.compute_node_id(ma5(schema_id="ind-v1")) == MA5_ID


def test_schema_compat_id_conflict_is_rejected() -> None:
    error = rejected(ma5(schema_id="ind-v9"), index=2)
    assert error.wire_code == "E_SCHEMA_COMPAT_MISMATCH"
    assert error.details == {"index": 2, "field": "spec.schema_id"}


def test_crc32_chains_in_submitted_order() -> None:
    assert nodeid.node_ids_crc32([]) == 0
    forward = nodeid.node_ids_crc32([SRC_ID, MA5_ID])
    # Chaining CRC32 equals the CRC32 of the concatenation, in order.
    assert forward == zlib.crc32((SRC_ID + MA5_ID).encode())
    assert forward != nodeid.node_ids_crc32([MA5_ID, SRC_ID])


def test_unset_interval_and_period_are_zero() -> None:
    spec = NodeSpec(node_type="X")
    assert nodeid.canonical_bytes(spec) == b"X|0|0|null|||"


def test_node_ids_names_the_first_bad_node() -> None:
    nodes = [node_pb2.Node(spec=src()), node_pb2.Node(spec=ma5(params_json="{"))]
    with pytest.raises(QmtlError) as caught:
        nodeid.node_ids(nodes)
    assert caught.value.details["index"] == 1
    assert nodeid.node_ids(nodes[:1]) == [SRC_ID]
