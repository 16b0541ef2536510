"""Checks a submitted DAG before anything is read or written, in a fixed order of phases:

1. the DAG: present, schema_version `v1`, node count;
2. each node: the fields the id rule needs, ranges, tags, then its recomputed id;
3. the graph as submitted: duplicate ids, edges against dependencies, cycles;
4. identity: each submitted id against its recomputed one, then the CRC32;
and reports the dependencies outside the DAG, which only the store can check. Cycles are
checked on the submitted ids before the ids themselves: a correctly computed id hashes its
dependencies' ids, so a cycle could otherwise only ever surface as an id mismatch.

The Gateway (at submit) and the DAG Manager (at diff) run this same function, so a DAG the
Gateway accepts is refused by the DAG Manager only for what needs the global graph. Field paths
start at `dag` and `node_ids_crc32`, the names both requests give these fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from qmtl.dag.v1 import dag_pb2, node_pb2
from qmtl.runtime import nodeid
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.graphstore.model import MAX_BATCH

from .cycles import find_cycle
from .errors import ErrorCode, dag_invalid, field_error, node_id_fields, validation
from .limits import MAX_INTERVAL_SECONDS, MAX_PERIOD, MAX_TAG_LENGTH, TAG_PATTERN, DagLimits

DAG_SCHEMA_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class ParsedNode:
    index: int
    node: node_pb2.Node
    node_id: str
    is_tag_query: bool
    dependencies: tuple[str, ...]  # non-empty, first occurrence order, no repeats
    query_interval: int  # a tag query's interval (node's, else the query's); 0 otherwise


@dataclass(frozen=True, slots=True)
class ValidatedDag:
    nodes: tuple[ParsedNode, ...]
    crc32: int
    # Dependencies naming no node of the DAG, with the first place each is named; the DAG
    # Manager's diff checks them against the store.
    external: dict[str, str]


def validate_dag(dag: dag_pb2.Dag | None, node_ids_crc32: int, limits: DagLimits) -> ValidatedDag:
    """Raises the QmtlError of the first problem found; see the module doc for the order.
    `dag` is None when the request has none (`HasField("dag")` is false)."""
    if dag is None:
        raise validation("dag", "is required")
    _check_dag(dag, limits)
    parsed = [_check_node(i, node, limits) for i, node in enumerate(dag.nodes)]
    external = _check_graph(dag, parsed)
    crc = _check_identity(node_ids_crc32, parsed)
    if len(parsed) + len(external) > MAX_BATCH:
        raise field_error(
            ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
            "dag.nodes",
            f"{len(parsed)} nodes and {len(external)} stored dependencies exceed the "
            f"{MAX_BATCH} one graph transaction takes",
            count=len(parsed) + len(external),
            limit=MAX_BATCH,
        )
    return ValidatedDag(tuple(parsed), crc, external)


def _check_dag(dag: dag_pb2.Dag, limits: DagLimits) -> None:
    if dag.schema_version != DAG_SCHEMA_VERSION:
        raise field_error(
            ErrorCode.ERROR_CODE_SCHEMA_INVALID,
            "dag.schema_version",
            f"must be {DAG_SCHEMA_VERSION!r}, got {dag.schema_version!r}",
        )
    count = len(dag.nodes)
    if count == 0:
        raise validation("dag.nodes", "must not be empty")
    if count > limits.max_nodes:
        raise field_error(
            ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
            "dag.nodes",
            f"{count} nodes, the limit is {limits.max_nodes}",
            count=count,
            limit=limits.max_nodes,
        )


def _check_range(field: str, value: int, high: int, what: str) -> None:
    if not 0 <= value <= high:
        raise validation(field, f"{what} must be 0..{high} (0 = none), got {value}")


def _check_tags(field: str, tags: list[str], limits: DagLimits) -> None:
    if len(tags) > limits.max_tags_per_node:
        raise validation(field, f"{len(tags)} tags, the limit is {limits.max_tags_per_node}")
    for index, tag in enumerate(tags):
        if not 1 <= len(tag) <= MAX_TAG_LENGTH or not TAG_PATTERN.fullmatch(tag):
            raise validation(
                f"{field}[{index}]",
                f"tag {tag[:MAX_TAG_LENGTH]!r} must be 1-{MAX_TAG_LENGTH} characters of "
                "[a-zA-Z0-9_.-]",
            )


def _check_required(where: str, node: node_pb2.Node, is_tag_query: bool) -> None:
    spec = node.spec
    required = {
        "spec.node_type": spec.node_type,
        "spec.code_hash": spec.code_hash,
        "spec.schema_compat_id": spec.schema_compat_id or spec.schema_id,
        "config_hash": node.config_hash,
        "schema_hash": node.schema_hash,
    }
    for name, value in required.items():
        if not value:
            raise node_id_fields(f"{where}.{name}", "must not be empty")
    if is_tag_query:
        if not spec.tag_query.tags:
            raise node_id_fields(f"{where}.spec.tag_query.tags", "a tag query needs tags")
        if not (spec.interval or spec.tag_query.interval):
            raise node_id_fields(
                f"{where}.spec.tag_query.interval", "a tag query needs an interval"
            )


# A node id is a pure function of (kind, spec). Most submissions resubmit DAGs this process has
# seen, so ids are remembered by the spec's deterministic bytes: a hit skips the JSON
# canonicalisation that otherwise dominates validating a 1,000-node DAG (bench/graph).
# Bounded (oldest out first) and process-local; a miss costs one serialisation.
ID_CACHE_SIZE = 65_536
_id_cache: dict[tuple[int, bytes], str] = {}


def _recompute_id(where: str, index: int, node: node_pb2.Node) -> str:
    key = (int(node.kind), node.spec.SerializeToString(deterministic=True))
    cached = _id_cache.get(key)
    if cached is not None:
        return cached
    expected = _compute_id(where, index, node)
    if len(_id_cache) >= ID_CACHE_SIZE:
        del _id_cache[next(iter(_id_cache))]
    _id_cache[key] = expected
    return expected


def _compute_id(where: str, index: int, node: node_pb2.Node) -> str:
    try:
        return nodeid.node_id(node, index=index)
    except QmtlError as exc:
        field = f"{where}.{exc.details.get('field', 'spec')}"
        if exc.code == ErrorCode.ERROR_CODE_SCHEMA_COMPAT_MISMATCH:
            raise field_error(exc.code, field, exc.message, index=index) from None
        raise node_id_fields(field, exc.message, index=index) from None


def _check_node(index: int, node: node_pb2.Node, limits: DagLimits) -> ParsedNode:
    where = f"dag.nodes[{index}]"
    spec = node.spec
    is_tag_query = nodeid.is_tag_query(node.kind, spec.node_type)
    _check_required(where, node, is_tag_query)
    _check_range(f"{where}.spec.interval", spec.interval, MAX_INTERVAL_SECONDS, "interval")
    _check_range(f"{where}.spec.period", spec.period, MAX_PERIOD, "period")
    _check_range(
        f"{where}.spec.tag_query.interval",
        spec.tag_query.interval,
        MAX_INTERVAL_SECONDS,
        "interval",
    )
    _check_tags(f"{where}.tags", list(node.tags), limits)
    _check_tags(f"{where}.spec.tag_query.tags", list(spec.tag_query.tags), limits)
    deps = tuple(dict.fromkeys(dep for dep in spec.dependencies if dep))
    if len(deps) > limits.max_dependencies_per_node:
        raise validation(
            f"{where}.spec.dependencies",
            f"{len(deps)} dependencies, the limit is {limits.max_dependencies_per_node}",
        )
    if is_tag_query and deps:
        raise dag_invalid(
            f"{where}.spec.dependencies",
            "a tag-query node has no static dependencies; its inputs come from its query",
        )
    expected = _recompute_id(where, index, node)
    if not node.node_id:
        raise field_error(
            ErrorCode.ERROR_CODE_NODE_ID_MISMATCH,
            f"{where}.node_id",
            f"is empty, expected {expected}",
            index=index,
            node_id="",
            expected=expected,
        )
    query_interval = (spec.interval or spec.tag_query.interval) if is_tag_query else 0
    return ParsedNode(index, node, expected, is_tag_query, deps, query_interval)


def _check_graph(dag: dag_pb2.Dag, parsed: list[ParsedNode]) -> dict[str, str]:
    """Duplicates, edges and cycles on the submitted ids; returns the external dependencies."""
    first_index: dict[str, int] = {}
    for p in parsed:
        submitted = p.node.node_id
        if submitted in first_index:
            raise dag_invalid(
                f"dag.nodes[{p.index}].node_id",
                f"node {submitted} already appears at dag.nodes[{first_index[submitted]}]",
                index=p.index,
                first_index=first_index[submitted],
                node_id=submitted,
            )
        first_index[submitted] = p.index
    graph = {p.node.node_id: p.dependencies for p in parsed}
    _check_edges(dag, parsed)
    cycle = find_cycle(graph)
    if cycle is not None:
        raise field_error(
            ErrorCode.ERROR_CODE_DAG_CYCLE,
            f"dag.nodes[{first_index[cycle[0]]}].spec.dependencies",
            "dependency cycle " + " -> ".join([*cycle, cycle[0]]),
            node_ids=cycle,
        )
    external: dict[str, str] = {}
    for p in parsed:
        for j, dep in enumerate(p.node.spec.dependencies):
            if dep and dep not in graph and dep not in external:
                external[dep] = f"dag.nodes[{p.index}].spec.dependencies[{j}]"
    return external


def _check_edges(dag: dag_pb2.Dag, parsed: list[ParsedNode]) -> None:
    """Edges are redundant with the dependencies: none at all, or exactly the derived set."""
    edges = dag.edges
    if not edges:
        return
    derived = {(dep, p.node.node_id) for p in parsed for dep in p.dependencies}
    given: set[tuple[str, str]] = set()
    for k, edge in enumerate(edges):
        pair = (edge.source, edge.target)
        if pair not in derived:
            raise dag_invalid(
                f"dag.edges[{k}]",
                f"edge {edge.source} -> {edge.target} is not a dependency of the DAG",
                source=edge.source,
                target=edge.target,
            )
        given.add(pair)
    for p in parsed:
        for dep in p.dependencies:
            if (dep, p.node.node_id) not in given:
                j = list(p.node.spec.dependencies).index(dep)
                raise dag_invalid(
                    f"dag.nodes[{p.index}].spec.dependencies[{j}]",
                    f"dependency {dep} has no edge in dag.edges (give every edge or none)",
                    source=dep,
                    target=p.node.node_id,
                )


def _check_identity(node_ids_crc32: int, parsed: list[ParsedNode]) -> int:
    """Submitted ids against recomputed ones, then the checksum; returns the checksum."""
    for p in parsed:
        if p.node.node_id != p.node_id:
            raise field_error(
                ErrorCode.ERROR_CODE_NODE_ID_MISMATCH,
                f"dag.nodes[{p.index}].node_id",
                f"{p.node.node_id} differs from the recomputed id {p.node_id}",
                index=p.index,
                node_id=p.node.node_id,
                expected=p.node_id,
            )
    crc = nodeid.node_ids_crc32(p.node_id for p in parsed)
    if node_ids_crc32 != crc:
        raise field_error(
            ErrorCode.ERROR_CODE_CHECKSUM_MISMATCH,
            "node_ids_crc32",
            f"{node_ids_crc32} differs from {crc}, the CRC32 of the node ids in order",
            expected=crc,
            got=node_ids_crc32,
        )
    return crc
