"""Builders of DAGs and DiffRequests with real node ids (qmtl.runtime.nodeid), for any test.

`make_node` gives one node whose `node_id` is computed from its spec; `DagBuilder` collects
nodes (returning each id, to use as a later node's dependency) and makes the Dag and the
DiffRequest, checksum included. Defaults fill every field the diff requires, so a test only
states what it is about.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from qmtl.common.v1 import match_mode_pb2
from qmtl.dag.v1 import dag_pb2, node_pb2, node_spec_pb2, tag_query_pb2
from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.runtime import nodeid

NodeKind = node_pb2.NodeKind
MatchMode = match_mode_pb2.MatchMode
CODE_HASH = "c0de" * 16
CONFIG_HASH = "c0f1" * 16
SCHEMA_HASH = "5c4e" * 16


def make_node(
    node_type: str = "Node",
    *,
    tags: Sequence[str] = (),
    interval: int = 60,
    period: int = 5,
    params: Mapping[str, Any] | None = None,
    deps: Sequence[str] = (),
    code_hash: str = CODE_HASH,
    schema_compat_id: str = "compat-v1",
    schema_hash: str = SCHEMA_HASH,
    config_hash: str = CONFIG_HASH,
    kind: int = NodeKind.NODE_KIND_UNSPECIFIED,
    query: tag_query_pb2.TagQuery | None = None,
    name: str = "",
) -> node_pb2.Node:
    spec = node_spec_pb2.NodeSpec(
        node_type=node_type,
        interval=interval,
        period=period,
        params_json=json.dumps(params) if params is not None else "",
        dependencies=list(deps),
        schema_compat_id=schema_compat_id,
        code_hash=code_hash,
    )
    if query is not None:
        spec.tag_query.CopyFrom(query)
    node = node_pb2.Node(
        kind=kind,  # type: ignore[arg-type]
        spec=spec,
        name=name,
        tags=list(tags),
        config_hash=config_hash,
        schema_hash=schema_hash,
    )
    node.node_id = nodeid.node_id(node)
    return node


def make_tag_query(
    tags: Sequence[str],
    *,
    interval: int = 60,
    match_mode: int = MatchMode.MATCH_MODE_ANY,
    **fields: Any,
) -> node_pb2.Node:
    """A TagQueryNode asking for `tags` at `interval` (set on the node, as the SDK does)."""
    query = tag_query_pb2.TagQuery(tags=list(tags), match_mode=match_mode)  # type: ignore[arg-type]
    return make_node(
        "TagQueryNode",
        interval=interval,
        kind=NodeKind.NODE_KIND_TAG_QUERY,
        query=query,
        **fields,
    )


class DagBuilder:
    def __init__(self, *, version: str = "", strategy_version: str = "") -> None:
        self.nodes: list[node_pb2.Node] = []
        self.meta = dag_pb2.DagMeta(version=version, strategy_version=strategy_version)

    def add(self, node: node_pb2.Node) -> str:
        self.nodes.append(node)
        return node.node_id

    def node(self, node_type: str = "Node", **fields: Any) -> str:
        """Adds `make_node(node_type, **fields)`; returns its id."""
        return self.add(make_node(node_type, **fields))

    def tag_query(self, tags: Sequence[str], **fields: Any) -> str:
        return self.add(make_tag_query(tags, **fields))

    def dag(self, *, with_edges: bool = False) -> dag_pb2.Dag:
        dag = dag_pb2.Dag(schema_version="v1", nodes=self.nodes, meta=self.meta)
        if with_edges:
            dag.edges.extend(derived_edges(self.nodes))
        return dag

    def request(
        self, strategy_id: str = "strategy-1", *, dry_run: bool = False, with_edges: bool = False
    ) -> diff_messages_pb2.DiffRequest:
        return diff_request(strategy_id, self.dag(with_edges=with_edges), dry_run=dry_run)


def derived_edges(nodes: Sequence[node_pb2.Node]) -> list[dag_pb2.Edge]:
    return [
        dag_pb2.Edge(source=dep, target=node.node_id)
        for node in nodes
        for dep in node.spec.dependencies
    ]


def diff_request(
    strategy_id: str, dag: dag_pb2.Dag, *, dry_run: bool = False
) -> diff_messages_pb2.DiffRequest:
    """A request whose checksum matches the DAG's node ids as they are."""
    return diff_messages_pb2.DiffRequest(
        strategy_id=strategy_id,
        dag=dag,
        node_ids_crc32=nodeid.node_ids_crc32(node.node_id for node in dag.nodes),
        dry_run=dry_run,
    )


def chain(builder: DagBuilder, length: int, *, tags: Sequence[str] = ("btc",)) -> list[str]:
    """Adds a source and `length - 1` nodes each depending on the previous; returns the ids."""
    ids = [builder.node("StreamInput", tags=tags, period=0, params={"symbol": "BTC"})]
    for step in range(1, length):
        ids.append(builder.node("Indicator", tags=tags, params={"step": step}, deps=[ids[-1]]))
    return ids
