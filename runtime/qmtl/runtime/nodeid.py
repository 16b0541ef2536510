"""Node identity: the one rule SDK, Gateway and DAG Manager share (docs/operations/node-id.md).

canonical bytes = `node_type|interval|period|params|deps|schema_compat_id|code_hash` (UTF-8);
`node_id = "blake3:" + hex(blake3(bytes))`; a DAG's checksum is zlib CRC32 chained over its ids
in submitted order; a DAG's `dag_hash` is hex SHA-256 over its sorted, distinct ids joined by
"\n". This module computes; it does not validate a DAG's edges, tags or ranges.
Every rule violation is a `QmtlError` whose details name the node `index` and the `field`.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from blake3 import blake3

from qmtl.common.v1 import error_code_pb2, match_mode_pb2
from qmtl.dag.v1 import node_pb2, node_spec_pb2
from qmtl.runtime.errors import Code, QmtlError

NodeKind = node_pb2.NodeKind
ID_PREFIX = "blake3:"
TAG_QUERY_NODE_TYPE = "TagQueryNode"

# Keys that describe where or when a node runs, not what it computes (domain.md §2.3): the same
# computation in another world or at another time must keep its id, hence its queue.
EXCLUDED_PARAM_KEYS = frozenset(
    {
        "world",
        "world_id",
        "world_ids",
        "execution_world",
        "execution_domain",
        "domain",
        "domains",
        "as_of",
        "partition",
        "dataset_fingerprint",
        "timestamp",
        "seed",
        "random_state",
        "env",
    }
)
EXCLUDED_PARAM_PREFIX = "env_"


def _excluded(key: str) -> bool:
    lowered = key.lower()
    return lowered in EXCLUDED_PARAM_KEYS or lowered.startswith(EXCLUDED_PARAM_PREFIX)


class _Rejected(Exception):
    """A params_json problem, turned into a QmtlError once the node index is known."""


def _reject_constant(name: str) -> Any:
    raise _Rejected(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    # `1e400` parses to inf, which json.dumps would spell `Infinity`: the same as a literal one.
    value = float(text)
    if not math.isfinite(value):
        raise _Rejected(f"number {text} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Rejected(f"duplicate key {key!r}")
        result[key] = value
    return result


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not _excluded(k)}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_params(params_json: str) -> str:
    """The canonical params text of a non-tag-query node; raises `_Rejected`."""
    if not params_json:
        return "null"
    try:
        parsed = json.loads(
            params_json,
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
        text = _dump(_strip(parsed))
        # A lone surrogate (`"\ud800"`) parses but has no UTF-8 form.
        text.encode("utf-8")
    except _Rejected:
        raise
    except RecursionError:
        raise _Rejected("nested too deeply") from None
    except UnicodeEncodeError:
        raise _Rejected("contains a lone surrogate escape") from None
    except ValueError as exc:  # JSONDecodeError, and ints beyond Python's digit limit
        raise _Rejected(f"not valid JSON: {exc}") from None
    return text


def is_tag_query(kind: int, node_type: str) -> bool:
    """Whether a node hashes as a tag query: its kind says so, or (kind unset) its node_type."""
    if kind == NodeKind.NODE_KIND_UNSPECIFIED:
        return node_type == TAG_QUERY_NODE_TYPE
    return kind == NodeKind.NODE_KIND_TAG_QUERY


def _error(
    index: int, field: str, message: str, code: Code = error_code_pb2.ERROR_CODE_VALIDATION
) -> QmtlError:
    return QmtlError(
        code,
        f"node {index}: {field}: {message}",
        details={"index": index, "field": field},
    )


def _tag_query_interval(spec: node_spec_pb2.NodeSpec, index: int) -> int | None:
    # 0 means "no interval" on both fields, whatever their proto presence.
    node_interval = spec.interval
    query_interval = spec.tag_query.interval if spec.HasField("tag_query") else 0
    if node_interval and query_interval and node_interval != query_interval:
        raise _error(
            index,
            "spec.tag_query.interval",
            f"{query_interval} differs from spec.interval {node_interval}",
        )
    return node_interval or query_interval or None


def tag_query_params(spec: node_spec_pb2.NodeSpec, index: int = 0) -> str:
    """The canonical params text of a tag-query node, as its id hashes it (`index` names the
    node in an error)."""
    if spec.params_json:
        raise _error(index, "spec.params_json", "must be empty on a tag-query node")
    query = spec.tag_query
    mode = "all" if query.match_mode == match_mode_pb2.MATCH_MODE_ALL else "any"
    params = {
        "interval": _tag_query_interval(spec, index),
        "match_mode": mode,
        "query_tags": sorted(set(query.tags)),
    }
    return _dump(params)


def _schema_compat_id(spec: node_spec_pb2.NodeSpec, index: int) -> str:
    if spec.schema_compat_id and spec.schema_id and spec.schema_compat_id != spec.schema_id:
        raise _error(
            index,
            "spec.schema_id",
            f"{spec.schema_id!r} differs from spec.schema_compat_id {spec.schema_compat_id!r}",
            error_code_pb2.ERROR_CODE_SCHEMA_COMPAT_MISMATCH,
        )
    return spec.schema_compat_id or spec.schema_id


def canonical_bytes(
    spec: node_spec_pb2.NodeSpec,
    *,
    kind: int = NodeKind.NODE_KIND_UNSPECIFIED,
    index: int = 0,
) -> bytes:
    """The bytes a node's id hashes; `index` only labels errors."""
    if is_tag_query(kind, spec.node_type):
        params = tag_query_params(spec, index)
    else:
        try:
            params = canonical_params(spec.params_json)
        except _Rejected as exc:
            raise _error(index, "spec.params_json", str(exc)) from None
    deps = ",".join(sorted(dep for dep in spec.dependencies if dep))
    fields = (
        spec.node_type,
        str(spec.interval),
        str(spec.period),
        params,
        deps,
        _schema_compat_id(spec, index),
        spec.code_hash,
    )
    return "|".join(fields).encode("utf-8")


def compute_node_id(
    spec: node_spec_pb2.NodeSpec,
    *,
    kind: int = NodeKind.NODE_KIND_UNSPECIFIED,
    index: int = 0,
) -> str:
    """`blake3:<64 hex>` of the node's canonical bytes."""
    return ID_PREFIX + blake3(canonical_bytes(spec, kind=kind, index=index)).hexdigest()


def node_id(node: node_pb2.Node, *, index: int = 0) -> str:
    """The id of a DAG node (its submitted `node_id` is ignored)."""
    return compute_node_id(node.spec, kind=node.kind, index=index)


def node_ids(nodes: Sequence[node_pb2.Node]) -> list[str]:
    """The ids of `nodes` in order; an error names the first offending node's index."""
    return [node_id(node, index=index) for index, node in enumerate(nodes)]


def node_ids_crc32(ids: Iterable[str]) -> int:
    """zlib CRC32 chained over the ids, in the order given."""
    crc = 0
    for item in ids:
        crc = zlib.crc32(item.encode("utf-8"), crc)
    return crc


def dag_hash(ids: Iterable[str]) -> str:
    """Hex SHA-256 of the sorted, distinct node ids joined by "\\n" (UTF-8): the identity of a
    DAG, the Gateway's duplicate-submission key.

    Each id already hashes its node's inputs (their ids among them), so the set of ids
    identifies the graph; sorting makes it independent of node order and of everything
    protobuf bytes vary with (field order, unknown fields, map order), which is why it is not
    computed over the encoded Dag. Call it on validated ids: it does not check them.
    """
    joined = "\n".join(sorted(set(ids)))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()
