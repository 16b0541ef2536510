"""Bad input to the diff: a typed 4xx naming the field, and nothing written (graph or topics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qmtl.dag.v1 import dag_pb2, node_pb2
from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.runtime.dag_validation import validator
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.graphstore import InMemoryGraphStore
from qmtl.runtime.topicadmin import InMemoryTopicAdmin
from qmtl.services.dag_manager.diff import DiffLimits, DiffService, InvalidDiffLimits
from tests.dag_manager.dag_builders import DagBuilder, chain, diff_request, make_node
from tests.dag_manager.diff_support import DiffEnv, expect_rejected, make_env

E = ErrorCode
Request = diff_messages_pb2.DiffRequest


@pytest.fixture
async def env() -> DiffEnv:
    env = make_env()
    seed = DagBuilder()
    src = seed.node("StreamInput", tags=["eth"], params={"symbol": "ETH"})
    env.seeded = [src, seed.node("Indicator", tags=["eth"], deps=[src])]
    await env.service().diff(seed.request("seed-strategy"))
    return env


def three_new_nodes() -> DagBuilder:
    builder = DagBuilder()
    chain(builder, 3)
    return builder


def rebuilt(builder: DagBuilder, index: int, **changes: Any) -> Request:
    """The builder's DAG with node `index` rebuilt from changed fields (its id recomputed, its
    dependents not: use on a node nothing depends on) and a matching checksum."""
    node = builder.nodes[index]
    fields: dict[str, Any] = {
        "tags": list(node.tags),
        "interval": node.spec.interval,
        "period": node.spec.period,
        "deps": list(node.spec.dependencies),
    }
    fields.update(changes)
    builder.nodes[index] = make_node(node.spec.node_type, **fields)
    return builder.request()


def mutated(mutate: Callable[[dag_pb2.Dag], object], builder: DagBuilder | None = None) -> Request:
    """The DAG after `mutate`, with the checksum of its node ids as they then are."""
    dag = (builder or three_new_nodes()).dag()
    mutate(dag)
    return diff_request("strategy-1", dag)


def last_node(dag: dag_pb2.Dag) -> node_pb2.Node:
    return dag.nodes[len(dag.nodes) - 1]


async def test_empty_strategy_id(env: DiffEnv) -> None:
    request = three_new_nodes().request("")
    await expect_rejected(env, request, E.ERROR_CODE_VALIDATION, "strategy_id", status=422)


async def test_missing_dag_and_empty_dag(env: DiffEnv) -> None:
    await expect_rejected(env, Request(strategy_id="s"), E.ERROR_CODE_VALIDATION, "dag", status=422)
    empty = DagBuilder().request()
    await expect_rejected(env, empty, E.ERROR_CODE_VALIDATION, "dag.nodes", status=422)


async def test_schema_version_must_be_v1(env: DiffEnv) -> None:
    request = mutated(lambda dag: setattr(dag, "schema_version", "v2"))
    await expect_rejected(
        env, request, E.ERROR_CODE_SCHEMA_INVALID, "dag.schema_version", status=400
    )


async def test_more_nodes_than_the_limit(env: DiffEnv) -> None:
    builder = DagBuilder()
    chain(builder, 4)
    service = env.service(limits=DiffLimits(max_nodes=3))
    error = await expect_rejected(
        env,
        builder.request(),
        E.ERROR_CODE_PAYLOAD_TOO_LARGE,
        "dag.nodes",
        status=413,
        service=service,
    )
    assert (error.details["count"], error.details["limit"]) == (4, 3)
    # One node fewer is fine.
    builder.nodes.pop()
    assert len((await service.diff(builder.request())).new_node_ids) == 3


def test_impossible_limits_are_refused() -> None:
    with pytest.raises(InvalidDiffLimits):
        DiffLimits(max_nodes=10_001)
    with pytest.raises(InvalidDiffLimits):
        DiffLimits(max_apply_attempts=0)


@pytest.mark.parametrize(
    ("field", "mutate"),
    [
        ("dag.nodes[2].spec.code_hash", lambda n: setattr(n.spec, "code_hash", "")),
        ("dag.nodes[2].spec.node_type", lambda n: setattr(n.spec, "node_type", "")),
        ("dag.nodes[2].spec.schema_compat_id", lambda n: setattr(n.spec, "schema_compat_id", "")),
        ("dag.nodes[2].schema_hash", lambda n: setattr(n, "schema_hash", "")),
        ("dag.nodes[2].config_hash", lambda n: setattr(n, "config_hash", "")),
        ("dag.nodes[2].spec.params_json", lambda n: setattr(n.spec, "params_json", '{"a": NaN}')),
        (
            "dag.nodes[2].spec.params_json",
            lambda n: setattr(n.spec, "params_json", '{"a":1,"a":2}'),
        ),
    ],
)
async def test_node_id_fields(
    env: DiffEnv, field: str, mutate: Callable[[node_pb2.Node], object]
) -> None:
    request = mutated(lambda dag: mutate(last_node(dag)))
    await expect_rejected(env, request, E.ERROR_CODE_NODE_ID_FIELDS, field, status=400)


@pytest.mark.parametrize(
    ("field", "mutate"),
    [
        ("dag.nodes[3].spec.tag_query.tags", lambda n: n.spec.tag_query.ClearField("tags")),
        (
            "dag.nodes[3].spec.tag_query.interval",
            lambda n: (n.spec.ClearField("interval"), n.spec.tag_query.ClearField("interval")),
        ),
    ],
)
async def test_tag_query_needs_tags_and_interval(
    env: DiffEnv, field: str, mutate: Callable[[node_pb2.Node], object]
) -> None:
    builder = three_new_nodes()
    builder.tag_query(["btc"])
    request = mutated(lambda dag: mutate(last_node(dag)), builder)
    await expect_rejected(env, request, E.ERROR_CODE_NODE_ID_FIELDS, field, status=400)


async def test_tag_query_node_with_dependencies(env: DiffEnv) -> None:
    builder = three_new_nodes()
    builder.tag_query(["btc"])
    request = mutated(
        lambda dag: last_node(dag).spec.dependencies.append(dag.nodes[0].node_id), builder
    )
    await expect_rejected(
        env, request, E.ERROR_CODE_DAG_INVALID, "dag.nodes[3].spec.dependencies", status=400
    )


async def test_schema_id_conflict(env: DiffEnv) -> None:
    request = mutated(lambda dag: setattr(last_node(dag).spec, "schema_id", "other-v1"))
    await expect_rejected(
        env,
        request,
        E.ERROR_CODE_SCHEMA_COMPAT_MISMATCH,
        "dag.nodes[2].spec.schema_id",
        status=400,
    )


async def test_node_id_mismatch_names_index_and_expected_id(env: DiffEnv) -> None:
    builder = three_new_nodes()
    expected = builder.nodes[2].node_id
    request = mutated(lambda dag: setattr(last_node(dag), "node_id", "blake3:" + "0" * 64), builder)
    error = await expect_rejected(
        env, request, E.ERROR_CODE_NODE_ID_MISMATCH, "dag.nodes[2].node_id", status=400
    )
    assert (error.details["index"], error.details["expected"]) == (2, expected)
    empty = mutated(lambda dag: setattr(last_node(dag), "node_id", ""))
    error = await expect_rejected(
        env, empty, E.ERROR_CODE_NODE_ID_MISMATCH, "dag.nodes[2].node_id", status=400
    )
    assert error.details["expected"] == expected


async def test_duplicate_node_ids(env: DiffEnv) -> None:
    request = mutated(lambda dag: dag.nodes.add().CopyFrom(dag.nodes[1]))
    error = await expect_rejected(
        env, request, E.ERROR_CODE_DAG_INVALID, "dag.nodes[3].node_id", status=400
    )
    assert error.details["first_index"] == 1


@pytest.mark.parametrize(
    ("tag", "where"),
    [("b t c", "tags[1]"), ("x" * 101, "tags[1]"), ("", "tags[1]"), ("btc/usd", "tags[1]")],
)
async def test_invalid_tags(env: DiffEnv, tag: str, where: str) -> None:
    request = rebuilt(three_new_nodes(), 2, tags=["btc", tag])
    await expect_rejected(
        env, request, E.ERROR_CODE_VALIDATION, f"dag.nodes[2].{where}", status=422
    )


async def test_tag_query_tags_are_checked_too(env: DiffEnv) -> None:
    builder = three_new_nodes()
    builder.tag_query(["btc", "no spaces"])
    await expect_rejected(
        env,
        builder.request(),
        E.ERROR_CODE_VALIDATION,
        "dag.nodes[3].spec.tag_query.tags[1]",
        status=422,
    )


async def test_a_100_character_tag_is_fine(env: DiffEnv) -> None:
    request = rebuilt(three_new_nodes(), 2, tags=["btc", "x" * 100])
    assert len((await env.service().diff(request)).new_node_ids) == 3


async def test_too_many_tags(env: DiffEnv) -> None:
    request = rebuilt(three_new_nodes(), 2, tags=[f"t{i}" for i in range(4)])
    await expect_rejected(
        env,
        request,
        E.ERROR_CODE_VALIDATION,
        "dag.nodes[2].tags",
        status=422,
        service=env.service(limits=DiffLimits(max_tags_per_node=3)),
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"interval": 86_401}, "spec.interval"),
        ({"interval": -1}, "spec.interval"),
        ({"period": 10_001}, "spec.period"),
        ({"period": -5}, "spec.period"),
    ],
)
async def test_interval_and_period_ranges(
    env: DiffEnv, changes: dict[str, int], field: str
) -> None:
    request = rebuilt(three_new_nodes(), 2, **changes)
    await expect_rejected(
        env, request, E.ERROR_CODE_VALIDATION, f"dag.nodes[2].{field}", status=422
    )


async def test_range_bounds_are_inclusive(env: DiffEnv) -> None:
    request = rebuilt(three_new_nodes(), 2, interval=86_400, period=10_000)
    assert len((await env.service().diff(request)).new_node_ids) == 3


async def test_tag_query_interval_range(env: DiffEnv) -> None:
    builder = three_new_nodes()
    builder.tag_query(["btc"], interval=0)
    request = mutated(
        lambda dag: setattr(last_node(dag).spec.tag_query, "interval", 90_000), builder
    )
    await expect_rejected(
        env, request, E.ERROR_CODE_VALIDATION, "dag.nodes[3].spec.tag_query.interval", status=422
    )


async def test_dependency_neither_in_the_dag_nor_stored(env: DiffEnv) -> None:
    builder = three_new_nodes()
    builder.node("Indicator", tags=["btc"], deps=[builder.nodes[2].node_id, "blake3:" + "9" * 64])
    error = await expect_rejected(
        env,
        builder.request(),
        E.ERROR_CODE_DAG_INVALID,
        "dag.nodes[3].spec.dependencies[1]",
        status=400,
    )
    assert error.details["dependency"] == "blake3:" + "9" * 64


async def test_edges_must_match_the_dependencies(env: DiffEnv) -> None:
    builder = three_new_nodes()
    ids = [n.node_id for n in builder.nodes]
    extra = mutated(lambda dag: dag.edges.add(source=ids[0], target=ids[2]), builder)
    extra.dag.edges.extend([dag_pb2.Edge(source=ids[0], target=ids[1])])
    extra.dag.edges.extend([dag_pb2.Edge(source=ids[1], target=ids[2])])
    await expect_rejected(env, extra, E.ERROR_CODE_DAG_INVALID, "dag.edges[0]", status=400)

    missing = builder.request(with_edges=True)
    del missing.dag.edges[1]  # ids[1] -> ids[2]
    await expect_rejected(
        env, missing, E.ERROR_CODE_DAG_INVALID, "dag.nodes[2].spec.dependencies[0]", status=400
    )


async def test_matching_edges_are_accepted(env: DiffEnv) -> None:
    result = await env.service().diff(three_new_nodes().request(with_edges=True))
    assert len(result.new_node_ids) == 3


def cyclic_dag(size: int) -> dag_pb2.Dag:
    """Nodes whose submitted ids form a cycle (no real id can: an id hashes its deps' ids)."""
    builder = three_new_nodes()
    ids = [f"blake3:{f'{i:02d}' * 32}" for i in range(size)]
    dag = builder.dag()
    for i in range(size):
        node = dag.nodes.add()
        node.CopyFrom(make_node("Node", params={"i": i}))
        node.node_id = ids[i]
        node.spec.dependencies.append(ids[i - 1])
    return dag


async def test_cycle_names_the_nodes_on_it(env: DiffEnv) -> None:
    dag = cyclic_dag(3)
    error = await expect_rejected(
        env,
        diff_request("s", dag),
        E.ERROR_CODE_DAG_CYCLE,
        "dag.nodes[3].spec.dependencies",
        status=400,
    )
    on_cycle = {n.node_id for n in dag.nodes[3:]}
    assert set(error.details["node_ids"]) == on_cycle
    assert len(error.details["node_ids"]) == 3


async def test_self_dependency_is_a_cycle(env: DiffEnv) -> None:
    error = await expect_rejected(
        env,
        diff_request("s", cyclic_dag(1)),
        E.ERROR_CODE_DAG_CYCLE,
        "dag.nodes[3].spec.dependencies",
        status=400,
    )
    assert error.details["node_ids"] == ["blake3:" + "00" * 32]


async def test_checksum_must_match_in_submitted_order(env: DiffEnv) -> None:
    request = three_new_nodes().request()
    request.node_ids_crc32 ^= 1
    await expect_rejected(
        env, request, E.ERROR_CODE_CHECKSUM_MISMATCH, "node_ids_crc32", status=400
    )
    reordered = three_new_nodes().request()
    nodes = list(reordered.dag.nodes)
    del reordered.dag.nodes[:]
    reordered.dag.nodes.extend(reversed(nodes))  # the checksum is still that of the old order
    await expect_rejected(
        env, reordered, E.ERROR_CODE_CHECKSUM_MISMATCH, "node_ids_crc32", status=400
    )


async def test_a_stored_dependency_outside_the_dag_is_fine(env: DiffEnv) -> None:
    builder = DagBuilder()
    builder.node("Indicator", tags=["eth"], deps=[env.seeded[1]])
    result = await env.service().diff(builder.request())
    assert list(result.new_node_ids) == [builder.nodes[0].node_id]


async def test_dag_plus_stored_dependencies_must_fit_one_graph_batch(
    env: DiffEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validator, "MAX_BATCH", 2)  # instead of 10,000 nodes
    builder = DagBuilder()
    builder.node("Indicator", tags=["eth"], params={"x": 1}, deps=[env.seeded[1]])
    builder.node("Indicator", tags=["eth"], params={"x": 2}, deps=[env.seeded[1]])
    error = await expect_rejected(
        env, builder.request(), E.ERROR_CODE_PAYLOAD_TOO_LARGE, "dag.nodes", status=413
    )
    assert (error.details["count"], error.details["limit"]) == (3, 2)
    builder.nodes.pop()
    assert len((await env.service().diff(builder.request())).new_node_ids) == 1


async def test_a_remembered_id_still_catches_a_mismatch_on_resubmit() -> None:
    # The id cache is keyed by the spec: a node whose spec is unchanged but whose submitted
    # id was tampered with is refused exactly as on first sight.
    builder = DagBuilder()
    builder.node("StreamInput", tags=["btc"], period=0)
    service = DiffService(InMemoryGraphStore(), InMemoryTopicAdmin())
    good = builder.request()
    await service.diff(good)
    dag = builder.dag()
    dag.nodes[0].node_id = "blake3:" + "0" * 64
    with pytest.raises(QmtlError) as caught:
        await service.diff(diff_request("strategy-1", dag))
    assert caught.value.code == ErrorCode.ERROR_CODE_NODE_ID_MISMATCH
    assert caught.value.details["expected"] == good.dag.nodes[0].node_id
