"""The DAG Manager's broker admin: the TopicAdmin port, topic specs and the in-memory adapter.

The Kafka adapter is `qmtl.runtime.topicadmin.kafka.KafkaTopicAdmin`, imported from there
(it needs aiokafka, which the slim core wheel leaves out). See docs/operations/topics.md.
"""

from .errors import InvalidTopicError, TopicAdminError, TopicConfigMismatchError
from .memory import InMemoryTopicAdmin
from .port import TopicAdmin
from .spec import (
    DAY_MS,
    GC_TAG_INDICATOR,
    GC_TAG_KEY,
    GC_TAG_RAW,
    GC_TAG_SENTINEL,
    MAX_TOPIC_NAME_LENGTH,
    QMTL_CONFIG_PREFIX,
    TOPIC_TYPE_KEY,
    TopicSpec,
    check_topic_name,
    gc_tag_for,
    topic_spec_for,
)

__all__ = [
    "DAY_MS",
    "GC_TAG_INDICATOR",
    "GC_TAG_KEY",
    "GC_TAG_RAW",
    "GC_TAG_SENTINEL",
    "MAX_TOPIC_NAME_LENGTH",
    "QMTL_CONFIG_PREFIX",
    "TOPIC_TYPE_KEY",
    "InMemoryTopicAdmin",
    "InvalidTopicError",
    "TopicAdmin",
    "TopicAdminError",
    "TopicConfigMismatchError",
    "TopicSpec",
    "check_topic_name",
    "gc_tag_for",
    "topic_spec_for",
]
