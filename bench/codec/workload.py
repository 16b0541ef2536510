"""The messages the codec bench encodes and decodes: a 50-node strategy DAG.

bench/graph's layered DAG (sources, then layers of indicators each reading 1-3 nodes of the
layer before; what bench/submit submits), 10 sources wide so most nodes have dependencies and
the DAG has edges. The SDK sets no `metadata` Struct on its nodes; the second variant adds a
small one per node and on the DAG's meta, the costliest well-known type to walk.
"""

from __future__ import annotations

from bench.graph.workload import layered_dag, vocabulary
from qmtl.dag.v1 import dag_pb2

NODES = 50
WIDTH = 10


def dag(nodes: int = NODES, *, metadata: bool = False) -> dag_pb2.Dag:
    built = layered_dag(nodes, "codec", vocabulary(symbols=WIDTH), width=WIDTH)
    built.meta.strategy_version = "1.4.2"
    if metadata:
        built.meta.extra.update({"owner": "quant-desk", "risk": {"max_position": 1000}})
        for index, node in enumerate(built.nodes):
            node.metadata.update({"layer": index // WIDTH, "label": node.name, "warmup": [1, 5]})
    return built
