"""What a topic is made with: `TopicSpec`, the Kafka name rule and the config-by-type table.

The table is domain.md §2.6 (qmtl's `topic.py`): the node type decides partitions, replication
and retention. The GC tag (domain.md §4.4) is recorded with the spec under `qmtl.gc_tag`, so
whoever lists the topics later knows which GC policy applies without asking the graph.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from .errors import InvalidTopicError

# Kafka's own rule (org.apache.kafka.common.internals.Topic): legal characters, at most 249
# of them, and not "." or ".." (they would name the log directory's parents).
MAX_TOPIC_NAME_LENGTH: Final = 249
_LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]+")

DAY_MS: Final = 24 * 60 * 60 * 1000

# Keys under this prefix are QMTL's own metadata, not broker settings: a broker adapter keeps
# them out of CreateTopics (Kafka rejects unknown topic configs), so only the in-memory adapter
# lists them back; GC derives a queue's tag from the graph, never from the broker.
QMTL_CONFIG_PREFIX: Final = "qmtl."
GC_TAG_KEY: Final = "qmtl.gc_tag"
TOPIC_TYPE_KEY: Final = "qmtl.topic_type"

GC_TAG_RAW: Final = "raw"
GC_TAG_INDICATOR: Final = "indicator"
GC_TAG_SENTINEL: Final = "sentinel"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as it should exist. `config` holds broker settings (`retention.ms`,
    `cleanup.policy`) and the `qmtl.*` metadata; it is copied, read-only."""

    name: str
    partitions: int
    replication_factor: int
    retention_ms: int
    config: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TopicSpec):
            return NotImplemented
        return (
            self.name,
            self.partitions,
            self.replication_factor,
            self.retention_ms,
            dict(self.config),
        ) == (
            other.name,
            other.partitions,
            other.replication_factor,
            other.retention_ms,
            dict(other.config),
        )

    def __hash__(self) -> int:
        return hash((self.name, self.partitions, self.replication_factor, self.retention_ms))

    @property
    def gc_tag(self) -> str:
        """The GC policy tag recorded at creation; `indicator` (the default policy) if none."""
        return self.config.get(GC_TAG_KEY, GC_TAG_INDICATOR)


@dataclass(frozen=True, slots=True)
class _TypeProfile:
    topic_type: str
    partitions: int
    replication_factor: int
    retention_days: int
    gc_tag: str
    cleanup_policy: str | None


_RAW = _TypeProfile("raw", 3, 3, 7, GC_TAG_RAW, None)
_TRADE_EXEC = _TypeProfile("trade_exec", 1, 3, 90, GC_TAG_INDICATOR, None)
_INDICATOR = _TypeProfile("indicator", 1, 2, 30, GC_TAG_INDICATOR, "delete")

# Checked in this order on the lower-cased node type, as qmtl does: "RawOrderBook" is raw.
_BY_SUBSTRING: Final = (
    (("raw", "price", "ohlcv"), _RAW),
    (("exec", "trade", "order", "portfolio"), _TRADE_EXEC),
)


def check_topic_name(name: str, *, field_path: str = "name") -> None:
    """Raises InvalidTopicError unless `name` is a legal Kafka topic name."""
    if not name:
        raise InvalidTopicError("topic name is empty", field=field_path, topic=name)
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicError(
            f"topic name has {len(name)} characters, more than {MAX_TOPIC_NAME_LENGTH}",
            field=field_path,
            topic=name,
        )
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name {name!r} is reserved", field=field_path, topic=name)
    if not _LEGAL_NAME.fullmatch(name):
        raise InvalidTopicError(
            f"topic name {name!r} has characters outside [a-zA-Z0-9._-]",
            field=field_path,
            topic=name,
        )


def check_topic_spec(spec: TopicSpec, *, field_path: str = "spec") -> None:
    """Raises InvalidTopicError for an illegal name, non-positive sizes or a `retention.ms`
    config other than `retention_ms`. `retention_ms` -1 is Kafka's "keep forever"; other
    negatives are refused."""
    check_topic_name(spec.name, field_path=f"{field_path}.name")
    if spec.partitions < 1:
        raise InvalidTopicError(
            f"partitions must be at least 1, got {spec.partitions}",
            field=f"{field_path}.partitions",
            topic=spec.name,
        )
    if spec.replication_factor < 1:
        raise InvalidTopicError(
            f"replication_factor must be at least 1, got {spec.replication_factor}",
            field=f"{field_path}.replication_factor",
            topic=spec.name,
        )
    if spec.retention_ms < -1:
        raise InvalidTopicError(
            f"retention_ms must be -1 (forever) or more, got {spec.retention_ms}",
            field=f"{field_path}.retention_ms",
            topic=spec.name,
        )
    configured = spec.config.get("retention.ms")
    if configured is not None and configured != str(spec.retention_ms):
        # The broker gets retention_ms; a different config value would be silently lost.
        raise InvalidTopicError(
            f"config retention.ms {configured!r} disagrees with retention_ms {spec.retention_ms}",
            field=f"{field_path}.config",
            topic=spec.name,
        )


def gc_tag_for(name: str, node_type: str) -> str:
    """The GC policy tag of a new topic: `sentinel` if the topic or node type names a
    sentinel (domain.md §4.4 keeps those longest), else the type profile's tag."""
    if GC_TAG_SENTINEL in name.lower() or GC_TAG_SENTINEL in node_type.lower():
        return GC_TAG_SENTINEL
    return _profile_for(node_type).gc_tag


def _profile_for(node_type: str) -> _TypeProfile:
    lowered = node_type.lower()
    for needles, profile in _BY_SUBSTRING:
        if any(needle in lowered for needle in needles):
            return profile
    return _INDICATOR


def topic_spec_for(name: str, node_type: str) -> TopicSpec:
    """The spec of the topic `name` carrying a node of `node_type` (domain.md §2.6 table).

    Raises InvalidTopicError if `name` is not a legal Kafka topic name.
    """
    check_topic_name(name)
    profile = _profile_for(node_type)
    retention_ms = profile.retention_days * DAY_MS
    config = {
        "retention.ms": str(retention_ms),
        GC_TAG_KEY: gc_tag_for(name, node_type),
        TOPIC_TYPE_KEY: profile.topic_type,
    }
    if profile.cleanup_policy is not None:
        config["cleanup.policy"] = profile.cleanup_policy
    return TopicSpec(name, profile.partitions, profile.replication_factor, retention_ms, config)
