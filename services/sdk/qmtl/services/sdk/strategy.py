"""A strategy: a named, versioned set of nodes, and the DAG it is submitted as.

`to_dag()` gives the `qmtl.dag.v1.Dag` the Gateway validates (qmtl.runtime.dag_validation,
the same check the DAG Manager runs): nodes in a deterministic topological order, each with its
id, edges left empty (the platform derives them from the dependencies), `meta.version` the
strategy's version (it names the topics of the nodes this strategy creates).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qmtl.dag.v1 import dag_pb2
from qmtl.runtime import nodeid
from qmtl.runtime.dag_validation import DAG_SCHEMA_VERSION

from .authoring import NodeLike, is_node
from .errors import AuthoringError

# DagMeta.version is normalised to this alphabet by the platform; a label outside it would
# name topics differently from what the quant wrote, so it is refused instead.
_VERSION = re.compile(r"[A-Za-z0-9._-]{1,64}")


class Strategy:
    """Nodes added in any order; each node's inputs come along (`add(signal)` adds the whole
    graph under it). Two nodes with the same id are the same node: adding it again is a no-op,
    but two differently named or tagged nodes with one id are refused, since the DAG can carry
    only one of them."""

    def __init__(self, name: str, nodes: Sequence[NodeLike] = (), *, version: str = "v1") -> None:
        if not isinstance(name, str) or not name.strip():
            raise AuthoringError(f"Strategy: name must be a non-empty string, got {name!r}")
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise AuthoringError(
                f"Strategy {name!r}: version must be 1-64 characters of [A-Za-z0-9._-], "
                f"got {version!r}"
            )
        self.name = name
        self.version = version
        self._by_id: dict[str, NodeLike] = {}
        self._order: list[NodeLike] = []
        self.add(*nodes)

    def add(self, *nodes: NodeLike) -> None:
        """Adds `nodes` and, before each, its inputs not yet added (depth first, in input
        order), so `nodes` is always a topological order."""
        for node in nodes:
            if not is_node(node):
                raise AuthoringError(
                    f"Strategy {self.name!r}: {node!r} is not a StreamInput, Node or TagQueryNode"
                )
            self._visit(node)

    def _visit(self, node: NodeLike) -> None:
        # Iterative post-order: a long chain of nodes must not hit the recursion limit.
        stack: list[tuple[NodeLike, bool]] = [(node, False)]
        while stack:
            current, inputs_done = stack.pop()
            if self._known(current):
                continue
            if inputs_done:
                self._by_id[current.node_id] = current
                self._order.append(current)
                continue
            stack.append((current, True))
            stack.extend((item, False) for item in reversed(current.inputs))

    def _known(self, node: NodeLike) -> bool:
        present = self._by_id.get(node.node_id)
        if present is None:
            return False
        if present is not node and present.to_proto() != node.to_proto():
            raise AuthoringError(
                f"Strategy {self.name!r}: {type(node).__name__} {node.name!r} has the id "
                f"{node.node_id} of the already added {type(present).__name__} "
                f"{present.name!r} but other names or tags; a DAG carries one node per id"
            )
        return True

    @property
    def nodes(self) -> tuple[NodeLike, ...]:
        """Every node, inputs before the nodes that read them, in the order they were added."""
        return tuple(self._order)

    def by_id(self, node_id: str) -> NodeLike:
        try:
            return self._by_id[node_id]
        except KeyError:
            raise KeyError(f"strategy {self.name!r} has no node {node_id}") from None

    def node_ids(self) -> list[str]:
        return [node.node_id for node in self._order]

    def node_ids_crc32(self) -> int:
        """The checksum a submission carries: CRC32 chained over `to_dag()`'s node ids."""
        return nodeid.node_ids_crc32(self.node_ids())

    def to_dag(self) -> dag_pb2.Dag:
        if not self._order:
            raise AuthoringError(f"Strategy {self.name!r}: has no nodes")
        return dag_pb2.Dag(
            schema_version=DAG_SCHEMA_VERSION,
            nodes=[node.to_proto() for node in self._order],
            meta=dag_pb2.DagMeta(version=self.version),
        )

    def __repr__(self) -> str:
        return f"Strategy(name={self.name!r}, version={self.version!r}, nodes={len(self._order)})"
