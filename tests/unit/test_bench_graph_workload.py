"""bench/graph's workload and measuring loops, on the in-memory GraphStore (no timing is
asserted): the catalogue's shortcut ids are the real node-id rule, the DAGs are valid for the
diff, and the loops measure the work they claim."""

from __future__ import annotations

import re
from typing import cast

import pytest

from bench.graph.measure import (
    BenchCheckError,
    TimingStore,
    by_mode,
    diff_request,
    diff_rounds,
    store_lookups,
)
from bench.graph.workload import (
    TopicNamer,
    catalogue_nodes,
    layered_dag,
    lookups,
    vocabulary,
)
from qmtl.common.v1 import match_mode_pb2
from qmtl.dag.v1 import node_spec_pb2
from qmtl.runtime import nodeid
from qmtl.runtime.graphstore import GraphChanges, GraphStore, InMemoryGraphStore
from qmtl.runtime.topicadmin import InMemoryTopicAdmin
from qmtl.services.dag_manager.diff import DiffService

TAG = re.compile(r"[a-zA-Z0-9_.-]{1,100}")


def test_vocabulary_is_deterministic_distinct_and_valid_tags() -> None:
    vocab = vocabulary(300)
    assert vocab == vocabulary(300)
    assert len(set(vocab.symbols)) == 300
    assert all(TAG.fullmatch(tag) for tag in (*vocab.symbols, *vocab.kinds, *vocab.venues))
    assert vocab.size == 300 + len(vocab.kinds) + len(vocab.venues)
    assert "300 ticker symbols" in vocab.describe()


def test_catalogue_ids_follow_the_real_node_id_rule() -> None:
    for node in list(catalogue_nodes(200, vocabulary(50)))[::7]:
        spec = node_spec_pb2.NodeSpec(
            node_type=node.node_type,
            interval=node.interval,
            period=node.period,
            params_json=node.params_canon,
            schema_compat_id=node.schema_compat_id,
            code_hash=node.code_hash,
        )
        assert node.node_id == nodeid.compute_node_id(spec)
        assert node.params_canon == nodeid.canonical_params(node.params_canon)


def test_topic_namer_grows_the_hash_on_collision() -> None:
    namer = TopicNamer()
    nid = "blake3:" + "ab" * 32
    assert namer.name(nid, "Indicator", "BTC") == "btc_Indicator_abababab_v1"
    assert namer.name(nid, "Indicator", "BTC") == "btc_Indicator_ababababab_v1"
    assert namer.name(nid, "Indicator", "") == "asset_Indicator_abababab_v1"


def test_layered_dag_has_real_ids_and_edges_into_the_previous_layer() -> None:
    dag = layered_dag(60, "x", vocabulary(20), width=20)
    assert [n.node_id for n in dag.nodes] == nodeid.node_ids(dag.nodes)
    layer_of = {n.node_id: i // 20 for i, n in enumerate(dag.nodes)}
    for i, node in enumerate(dag.nodes):
        assert bool(node.spec.dependencies) == (i >= 20)
        assert all(layer_of[d] == i // 20 - 1 for d in node.spec.dependencies)
    assert len(dag.edges) == sum(len(n.spec.dependencies) for n in dag.nodes)
    assert not {n.node_id for n in dag.nodes} & {
        n.node_id for n in layered_dag(60, "y", vocabulary(20), width=20).nodes
    }


def test_lookups_mix_any_of_a_symbol_and_all_of_symbol_and_kind() -> None:
    vocab = vocabulary(50)
    found = lookups(10, vocab)
    assert found == lookups(10, vocab)
    modes = {q.match_mode for q in found}
    assert modes == {match_mode_pb2.MATCH_MODE_ANY, match_mode_pb2.MATCH_MODE_ALL}
    for q in found:
        assert q.tags[0] in vocab.symbols
        if q.match_mode == match_mode_pb2.MATCH_MODE_ALL:
            assert q.interval == 0
            assert q.tags[1] in vocab.kinds


async def test_load_and_lookups_answer_what_the_catalogue_holds() -> None:
    vocab = vocabulary(40)
    nodes = list(catalogue_nodes(1_200, vocab))
    store = InMemoryGraphStore()
    await store.apply(GraphChanges(nodes=tuple(nodes)))

    chosen = lookups(20, vocab)
    samples, answers = await store_lookups(store, chosen)
    assert len(samples) == len(answers) == 20
    for q, topics in zip(chosen, answers, strict=True):
        wanted = set(q.tags)
        expected = sorted(
            n.topic
            for n in nodes
            if (q.interval == 0 or n.interval == q.interval)
            and (
                wanted <= set(n.tags)
                if q.match_mode == match_mode_pb2.MATCH_MODE_ALL
                else wanted & set(n.tags)
            )
        )
        assert topics == expected
    assert any(answers)


async def test_diff_rounds_time_first_submits_and_resubmits_and_split_store_time() -> None:
    vocab = vocabulary(20)
    timing = TimingStore(InMemoryGraphStore())
    service = DiffService(cast(GraphStore, timing), InMemoryTopicAdmin())
    requests = [diff_request(f"s{r}", f"v{r}", 40, vocab) for r in range(2)]
    samples = await diff_rounds(service, requests, 3, lambda _: None, timing)
    assert (len(samples.first), len(samples.resubmit), len(samples.peer)) == (2, 6, 6)
    assert {"get_nodes", "apply"} <= set(samples.first_store)
    # Resubmissions are answered from the recorded snapshot: one read, no rewrite.
    assert set(samples.resubmit_store) == {"snapshot"}


async def test_diff_rounds_refuse_a_first_submit_that_reused_nodes() -> None:
    vocab = vocabulary(20)
    store = InMemoryGraphStore()
    request = diff_request("s", "same", 30, vocab)
    service = DiffService(store, InMemoryTopicAdmin())
    await service.diff(request)  # already stored: the "first" submit below creates nothing
    with pytest.raises(BenchCheckError, match="first submit created 0/30"):
        await diff_rounds(service, [request], 1, lambda _: None)


def test_by_mode_splits_samples_of_any_and_all_lookups() -> None:
    asked = lookups(6, vocabulary(10))  # any, all, any, all, ...
    split = by_mode([0.001, 0.010, 0.003, 0.020, 0.005, 0.030], asked)
    assert split["any"].n == split["all"].n == 3
    assert split["any"].p50_ms == pytest.approx(3.0)
    assert split["all"].p50_ms == pytest.approx(20.0)
    assert set(by_mode([0.001], asked)) == {"any"}  # fewer samples than lookups: the first
