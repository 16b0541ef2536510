"""Strategy SDK: builds the DAG, computes node IDs, submits to the Gateway, runs what is new.

Authoring (docs/sdk.md): `StreamInput`, `Node`, `TagQueryNode`, `Strategy`; the hashes that
make a node's id (`hashes`); payloads a compute function returns (`payloads`). Submission and
the runner live in `client`, `plan` and `runner`, imported from there.
"""

from .authoring import ComputeFn, Node, NodeLike, StreamInput, TagQueryNode
from .errors import AuthoringError
from .hashes import NULL_HASH, code_hash, config_hash, schema_hash
from .intervals import check_period, parse_interval
from .payloads import PayloadError, decode_payload, encode_payload
from .strategy import Strategy

__all__ = [
    "NULL_HASH",
    "AuthoringError",
    "ComputeFn",
    "Node",
    "NodeLike",
    "PayloadError",
    "Strategy",
    "StreamInput",
    "TagQueryNode",
    "check_period",
    "code_hash",
    "config_hash",
    "decode_payload",
    "encode_payload",
    "parse_interval",
    "schema_hash",
]
