"""The hashes a node carries: what changes its id and what does not (docs/sdk.md, "Node ids
and the hashes").

The node id (qmtl.runtime.nodeid) hashes `node_type|interval|period|params|deps|
schema_compat_id|code_hash`; of the helpers here only `code_hash` enters it directly, and the
config enters it as `params` (its canonical JSON, minus the keys that say where or when a node
runs: world, seed, as_of, ...). `config_hash` and `schema_hash` travel with the node because
the Gateway requires them, but they are not in the id:

- `code_hash(fn)`: hex SHA-256 of the function's source text (`inspect.getsource`, dedented so
  the same function nested one level deeper hashes the same). Any edit of that text changes
  the id, a comment or a blank line included. What the source refers to does NOT: values
  captured in a closure, module globals, default values computed elsewhere and the bodies of
  the functions it calls are not hashed. Put whatever changes the result into the node's
  `config` (which is hashed) or pin `code_hash=` yourself. A lambda's source is the whole
  line(s) it is written on. Without source (built-ins, functions made by `exec`, a file no
  longer holding the function where its code says) the hash falls back to the bytecode
  (`__code__.co_code`, which varies across Python versions), then to `repr(fn)` (partials and
  callable objects, whose repr may carry a memory address and so differ per process: give
  those an explicit `code_hash=`). No function hashes as `NULL_HASH`.
- `config_hash(config)`: hex SHA-256 of the config's canonical JSON; not in the id.
- `schema_hash(schema)`: hex SHA-256 of the schema's canonical JSON; not in the id. A node's
  `schema_compat_id` (which is) defaults to it, so by default any schema change changes the id;
  name a compatibility class (`schema_compat_id="ohlcv-v1"`) to keep the id across changes
  that do not break readers.

Canonical JSON: keys sorted, separators `,` and `:`, non-ASCII kept, NaN and infinities
refused, any mapping as an object, tuples as arrays, sets as sorted arrays.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import textwrap
import tokenize
from collections.abc import Callable, Mapping, Set
from typing import Any

# sha256(b"null"): the hash of "nothing" (no function, no config, no schema).
NULL_HASH = hashlib.sha256(b"null").hexdigest()


def _json_default(value: object) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Set):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON data")


def canonical_json(value: Any) -> str:
    """The canonical JSON text of `value`; raises TypeError or ValueError if it is not JSON
    data (an object, NaN, a non-string key next to string ones, a lone surrogate, ...)."""
    text = json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )
    # A lone surrogate ("\ud800") dumps but has no UTF-8 form, so could never be hashed or sent.
    text.encode("utf-8")
    return text


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_hash(fn: Callable[..., Any] | None) -> str:
    """Hex SHA-256 of `fn`'s source (see the module doc for what that covers)."""
    if fn is None:
        return NULL_HASH
    try:
        return _sha256(textwrap.dedent(inspect.getsource(fn)).encode("utf-8"))
    except (OSError, TypeError, SyntaxError, tokenize.TokenError):
        # No source (OSError, TypeError), or a file that no longer holds it where the code
        # says (edited since import): the bytecode is then the best account of the code.
        pass
    code = getattr(fn, "__code__", None)
    if code is not None:
        return _sha256(code.co_code)
    return _sha256(repr(fn).encode("utf-8"))


def config_hash(config: Mapping[str, Any] | None) -> str:
    """Hex SHA-256 of the config's canonical JSON; None hashes as `NULL_HASH`."""
    return _sha256(canonical_json(config).encode("utf-8"))


def schema_hash(schema: Mapping[str, Any] | None) -> str:
    """Hex SHA-256 of the schema's canonical JSON; None hashes as `NULL_HASH`."""
    return _sha256(canonical_json(schema).encode("utf-8"))
