"""The DAG Manager's broker admin: the TopicAdmin port, topic specs and the in-memory adapter.

The Kafka adapter arrives with the event-bus issue and joins the contract suite in
tests/contract/test_topicadmin_contract.py by one entry. See docs/operations/gc.md.
"""

from .errors import InvalidTopicError, TopicAdminError
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
    "TopicSpec",
    "check_topic_name",
    "gc_tag_for",
    "topic_spec_for",
]
