"""What a tag query is once normalised, and the names it goes by on the bus and in the store.

A query `(tags, interval, match_mode)` is normalised before anything looks it up, so every
spelling of the same question (tags in another order, repeated, MATCH_MODE_UNSPECIFIED for ANY)
shares one answer version. Limits and the naming rules are in docs/operations/dag-manager.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from qmtl.common.v1 import match_mode_pb2
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.graphstore import MatchMode, TaggedQueue

ANY = match_mode_pb2.MATCH_MODE_ANY
ALL = match_mode_pb2.MATCH_MODE_ALL
UNSPECIFIED = match_mode_pb2.MATCH_MODE_UNSPECIFIED

# domain.md §2.5: a tag is 1-100 characters of [A-Za-z0-9_.-].
MAX_TAG_LENGTH = 100
_TAG = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# Distinct tags in one query: bounds the store lookup and the key stored per query.
MAX_QUERY_TAGS = 100
# Bar intervals are 1..86400 seconds; 0 asks for any interval.
MAX_INTERVAL = 86_400


@dataclass(frozen=True, slots=True)
class TagQueryKey:
    """A normalised query: distinct tags sorted, ANY or ALL (never UNSPECIFIED)."""

    tags: tuple[str, ...]
    interval: int
    match_mode: MatchMode

    @property
    def mode_name(self) -> str:
        """The canonical spelling of the match mode, as node-ID params use it."""
        return "all" if self.match_mode == ALL else "any"

    @property
    def store_key(self) -> str:
        # ',' cannot occur in a tag, so unlike the '.'-joined subject this names exactly one
        # query: ["a.b"] and ["a", "b"] must not share a version counter.
        return f"tq1|{','.join(self.tags)}|{self.interval}|{self.mode_name}"

    @property
    def subject(self) -> str:
        """The bus subject event.proto prescribes (also the partition key)."""
        return f"tags/{'.'.join(self.tags)}/{self.interval}"

    def idempotency_key(self, version: int) -> str:
        # ','-joined for the same reason as store_key: a consumer drops events by this key,
        # so two different queries must never produce the same one.
        return f"queue_updated:{','.join(self.tags)}:{self.interval}:{self.mode_name}:{version}"

    def etag(self, version: int) -> str:
        """QueueUpdated.etag exactly as queue_events.proto spells it."""
        return f"q:{'.'.join(self.tags)}:{self.interval}:{version}"

    def matches(self, node_tags: Collection[str], node_interval: int) -> bool:
        """Whether a node with these tags and interval belongs to this query's answer."""
        if self.interval and node_interval != self.interval:
            return False
        if self.match_mode == ALL:
            return all(tag in node_tags for tag in self.tags)
        return any(tag in node_tags for tag in self.tags)


def _invalid(message: str, field: str) -> QmtlError:
    return QmtlError.validation(f"{field}: {message}", field=field)


def check_tag(tag: str, field: str) -> None:
    if not _TAG.fullmatch(tag):
        raise _invalid(
            f"a tag is 1-{MAX_TAG_LENGTH} characters of [A-Za-z0-9_.-], got {tag[:120]!r}", field
        )


def normalise_query(
    tags: Sequence[str], interval: int, match_mode: int, *, field_prefix: str = ""
) -> TagQueryKey:
    """The normalised key of a query; E_VALIDATION naming the offending field otherwise.

    `field_prefix` places the field paths inside the caller's message (e.g.
    `dag.nodes[3].spec.tag_query.`).
    """
    if not tags:
        raise _invalid("a tag query needs at least one tag", f"{field_prefix}tags")
    if len(tags) > MAX_QUERY_TAGS:
        raise _invalid(
            f"at most {MAX_QUERY_TAGS} tags per query, got {len(tags)}", f"{field_prefix}tags"
        )
    for index, tag in enumerate(tags):
        check_tag(tag, f"{field_prefix}tags[{index}]")
    if not 0 <= interval <= MAX_INTERVAL:
        raise _invalid(
            f"interval is 0 (any) or 1..{MAX_INTERVAL} seconds, got {interval}",
            f"{field_prefix}interval",
        )
    if match_mode not in (UNSPECIFIED, ANY, ALL):
        raise _invalid(f"unknown match mode {match_mode}", f"{field_prefix}match_mode")
    mode: MatchMode = ALL if match_mode == ALL else ANY
    return TagQueryKey(tuple(sorted(set(tags))), interval, mode)


def answer_etag(queues: Sequence[TaggedQueue]) -> str:
    """A stable hash of an answer: equal exactly when the queue sets (with every field a
    QueueDescriptor carries) are equal, whatever order the store listed them in."""
    rows = sorted([q.topic, q.node_id, q.interval, sorted(q.tags), q.is_global] for q in queues)
    text = json.dumps(rows, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
