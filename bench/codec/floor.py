"""The encode floor of any codec that reads messages through upb's Python attributes.

`read_fields` reads every field of the bench's DAG that the generated `to_set_Dag` reads, in
the same way (attributes, `[:]` of repeated scalars, presence through the unbound HasField),
and builds nothing. Its speed against json_format bounds the generated codec's encode ratio
from above: the codec reads all this, then builds the dicts and lists orjson prints.
"""

# ruff: noqa: B018  (each bare read is the point: its cost is what is measured)

from __future__ import annotations

from typing import Any

from qmtl.runtime.json_codec import has_field


def read_fields(dag: Any) -> None:
    """Every field read of the JSON encode of a Dag whose nodes have no metadata Struct."""
    dag.schema_version
    for node in dag.nodes:
        node.node_id
        node.kind
        if has_field(node, "spec"):
            spec = node.spec
            spec.node_type
            spec.interval
            spec.period
            spec.params_json
            spec.dependencies[:]
            spec.schema_compat_id
            spec.code_hash
            has_field(spec, "tag_query")
            spec.schema_id
        node.name
        node.tags[:]
        node.config_hash
        node.schema_hash
        has_field(node, "metadata")
    for edge in dag.edges:
        edge.source
        edge.target
    if has_field(dag, "meta"):
        meta = dag.meta
        meta.version
        meta.strategy_version
        meta.build_version
        has_field(meta, "extra")
