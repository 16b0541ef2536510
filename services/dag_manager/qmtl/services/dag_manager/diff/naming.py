"""Topic naming (domain.md §2.6): `{asset}_{node_type}_{short_hash}_{version}[_sim]`.

Pure functions, so the growth sequence is testable without a store. A name is only a proposal:
which names are taken is the graph's knowledge (the store refuses a new node whose topic another
node owns), and the diff walks `topic_candidates` until one is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from qmtl.dag.v1 import dag_pb2
from qmtl.runtime.nodeid import ID_PREFIX
from qmtl.runtime.topicadmin import MAX_TOPIC_NAME_LENGTH

SHORT_HASH_LENGTH = 8
HASH_GROWTH = 2
MAX_COLLISION_SUFFIX = 9_999
SIM_SUFFIX = "_sim"
DEFAULT_ASSET = "asset"
DEFAULT_VERSION = "v1"

# Segment caps keep the longest name (full 64-hex hash plus `-9999` and `_sim`) within
# Kafka's 249 characters: 40 + 1 + 64 + 1 + 69 + 1 + 64 + 4 = 244.
MAX_ASSET_LENGTH = 40
MAX_NODE_TYPE_LENGTH = 64
MAX_VERSION_LENGTH = 64
_DIGEST_LENGTH = 64

_NOT_ASSET = re.compile(r"[^a-z0-9_-]")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9._-]")

assert (
    MAX_ASSET_LENGTH
    + MAX_NODE_TYPE_LENGTH
    + _DIGEST_LENGTH
    + 1
    + len(str(MAX_COLLISION_SUFFIX))
    + MAX_VERSION_LENGTH
    + len(SIM_SUFFIX)
    + 3
    <= MAX_TOPIC_NAME_LENGTH
)


def asset_of(tags: Sequence[str]) -> str:
    """The first tag with anything left after lower-casing and keeping `[a-z0-9_-]`, as qmtl
    does; `asset` when there is none."""
    for tag in tags:
        cleaned = _NOT_ASSET.sub("", tag.lower())[:MAX_ASSET_LENGTH]
        if cleaned:
            return cleaned
    return DEFAULT_ASSET


def normalise_label(text: str, limit: int) -> str:
    """`text` with every character outside `[A-Za-z0-9._-]` replaced by `-`, cut to `limit`."""
    return _NOT_LABEL.sub("-", text)[:limit]


def version_of(meta: dag_pb2.DagMeta) -> str:
    """DagMeta's version, else strategy_version, else build_version, else `v1`, normalised."""
    for label in (meta.version, meta.strategy_version, meta.build_version):
        if label:
            return normalise_label(label, MAX_VERSION_LENGTH)
    return DEFAULT_VERSION


def digest_of(node_id: str) -> str:
    """The hex digest of a `blake3:<hex>` node id."""
    return node_id.removeprefix(ID_PREFIX)


def hash_segments(digest: str) -> Iterator[str]:
    """The short-hash segment to try, in order: 8 hex digits, growing by 2 up to the whole
    digest, then the whole digest with `-1` .. `-9999`."""
    length = min(SHORT_HASH_LENGTH, len(digest))
    while True:
        yield digest[:length]
        if length >= len(digest):
            break
        length = min(length + HASH_GROWTH, len(digest))
    for suffix in range(1, MAX_COLLISION_SUFFIX + 1):
        yield f"{digest}-{suffix}"


def topic_candidates(
    *, tags: Sequence[str], node_type: str, node_id: str, version: str, dry_run: bool = False
) -> Iterator[str]:
    """Every name a node may get, most preferred first (see `hash_segments`)."""
    asset = asset_of(tags)
    kind = normalise_label(node_type, MAX_NODE_TYPE_LENGTH) or "node"
    sim = SIM_SUFFIX if dry_run else ""
    for segment in hash_segments(digest_of(node_id)):
        yield f"{asset}_{kind}_{segment}_{version}{sim}"


def first_free(candidates: Iterable[str], taken: set[str]) -> tuple[str, Iterator[str]]:
    """The first candidate not in `taken`, and the iterator positioned after it (to continue
    from if the store later reports that name as owned by another node)."""
    remaining = iter(candidates)
    for name in remaining:
        if name not in taken:
            return name, remaining
    raise TopicNamesExhausted("every candidate topic name is taken")


class TopicNamesExhausted(Exception):
    """No candidate name is free (a node's 32 growth steps and 9,999 suffixes all taken)."""
