"""The event topics' names and specs (docs/operations/kafka.md, "Topics").

Every event type's first dotted segment after `qmtl.` names its area and the area names its
topic: `qmtl.dag.*` on DAG_EVENTS, `qmtl.gateway.*` on STRATEGY_EVENTS, `qmtl.ops.*` on
OPS_EVENTS. Each topic has a dead-letter topic `<topic>.dlq` where a consumer puts what it
could not decode. Kafka's auto-create is off, so the topics exist only once someone ensured
them: `event_topic_specs()` gives the specs (TopicAdmin.ensure_topics takes them).
"""

from __future__ import annotations

from qmtl.runtime.topicadmin.spec import DAY_MS, TopicSpec

from .errors import InvalidEventError

DAG_EVENTS = "qmtl.events.dag"
STRATEGY_EVENTS = "qmtl.events.strategy"
OPS_EVENTS = "qmtl.events.ops"
EVENT_TOPICS = (DAG_EVENTS, STRATEGY_EVENTS, OPS_EVENTS)

DEAD_LETTER_SUFFIX = ".dlq"

# Enough to spread subjects over a few consumers of one group; more partitions than members
# only costs a little broker memory, fewer would cap the group's parallelism.
EVENT_TOPIC_PARTITIONS = 6
# A week: a consumer group down over a long weekend still finds what it missed.
EVENT_RETENTION_MS = 7 * DAY_MS
# Two weeks: dead letters wait for a person, who may need longer than a consumer.
DEAD_LETTER_RETENTION_MS = 14 * DAY_MS

_AREA_TOPICS = {"dag": DAG_EVENTS, "gateway": STRATEGY_EVENTS, "ops": OPS_EVENTS}


def dead_letter_topic(topic: str) -> str:
    """Where a consumer of `topic` puts the messages it could not decode."""
    return topic + DEAD_LETTER_SUFFIX


def is_dead_letter_topic(topic: str) -> bool:
    return topic.endswith(DEAD_LETTER_SUFFIX)


def topic_for_event_type(event_type: str) -> str:
    """The topic an event of `event_type` (e.g. `qmtl.dag.queue_updated`) is published on."""
    prefix, _, rest = event_type.partition(".")
    area = rest.partition(".")[0]
    topic = _AREA_TOPICS.get(area) if prefix == "qmtl" else None
    if topic is None:
        raise InvalidEventError(
            f"event type {event_type!r} has no topic; types are qmtl.<dag|gateway|ops>.<name>",
            field="type",
        )
    return topic


def event_topic_specs(
    topics: tuple[str, ...] = EVENT_TOPICS,
    *,
    partitions: int = EVENT_TOPIC_PARTITIONS,
    replication: int = 1,
) -> list[TopicSpec]:
    """Each topic and its dead-letter topic, as TopicAdmin.ensure_topics takes them.
    `replication` is the cluster's choice (3 in production, 1 on a single broker)."""
    specs: list[TopicSpec] = []
    for topic in topics:
        for name, retention in (
            (topic, EVENT_RETENTION_MS),
            (dead_letter_topic(topic), DEAD_LETTER_RETENTION_MS),
        ):
            config = {"retention.ms": str(retention), "cleanup.policy": "delete"}
            specs.append(TopicSpec(name, partitions, replication, retention, config))
    return specs
