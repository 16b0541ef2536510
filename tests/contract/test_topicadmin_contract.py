"""The TopicAdmin contract: every adapter (in-memory and Kafka, on the shared broker)
behaves exactly like this; then the in-memory adapter's failure injection and the
config-by-type table (domain.md §2.6), which are adapter-independent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from qmtl.runtime.errors import ErrorCode
from qmtl.runtime.topicadmin import (
    DAY_MS,
    GC_TAG_KEY,
    MAX_TOPIC_NAME_LENGTH,
    InMemoryTopicAdmin,
    InvalidTopicError,
    TopicAdmin,
    TopicAdminError,
    TopicConfigMismatchError,
    TopicSpec,
    topic_spec_for,
)

from .topicadmin_support import (
    CONTRACT_BROKERS,
    TOPIC_ADMIN_ADAPTERS,
    TopicNames,
    connect_kafka,
    open_topic_admin,
)


@pytest.fixture(params=TOPIC_ADMIN_ADAPTERS)
async def admin(request: pytest.FixtureRequest) -> AsyncIterator[tuple[TopicAdmin, TopicNames]]:
    async with open_topic_admin(request.param) as pair:
        yield pair


async def my_topics(admin: TopicAdmin, names: TopicNames) -> dict[str, TopicSpec]:
    listed = await admin.list_topics()
    return {name: listed[name] for name in names.mine(listed)}


# --- ensure_topics ------------------------------------------------------------------------


async def test_ensure_creates_topics_and_lists_them_with_their_specs(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    a, b = names.spec("a", partitions=3), names.spec("b")
    assert await topics.ensure_topics([a, b]) == [a.name, b.name]
    assert await my_topics(topics, names) == {a.name: a, b.name: b}


async def test_ensure_is_idempotent_and_returns_only_what_it_created(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    a, b, c = names.spec("a"), names.spec("b"), names.spec("c")
    assert await topics.ensure_topics([a]) == [a.name]
    assert await topics.ensure_topics([a]) == []
    assert await topics.ensure_topics([c, a, b]) == [c.name, b.name]
    assert set(await my_topics(topics, names)) == {a.name, b.name, c.name}


async def test_ensure_accepts_an_existing_topic_that_matches(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    a = names.spec("a", partitions=2)
    await topics.ensure_topics([a])
    assert await topics.ensure_topics([names.spec("a", partitions=2)]) == []
    assert await my_topics(topics, names) == {a.name: a}


@pytest.mark.parametrize(
    ("changed", "expected", "actual"),
    [
        ({"partitions": 5}, {"partitions": "5"}, {"partitions": "2"}),
        ({"retention_ms": 120_000}, {"retention.ms": "120000"}, {"retention.ms": "60000"}),
        ({"cleanup": "compact"}, {"cleanup.policy": "compact"}, {"cleanup.policy": "delete"}),
        (
            {"partitions": 1, "retention_ms": 1000},
            {"partitions": "1", "retention.ms": "1000"},
            {"partitions": "2", "retention.ms": "60000"},
        ),
    ],
)
async def test_ensure_refuses_an_existing_topic_with_other_settings_naming_both(
    admin: tuple[TopicAdmin, TopicNames],
    changed: dict[str, object],
    expected: dict[str, str],
    actual: dict[str, str],
) -> None:
    topics, names = admin
    a = names.spec("a", partitions=2)
    await topics.ensure_topics([a])
    with pytest.raises(TopicConfigMismatchError) as caught:
        await topics.ensure_topics([names.spec("a", **{"partitions": 2, **changed})])  # type: ignore[arg-type]
    assert (caught.value.expected, caught.value.actual) == (expected, actual)
    assert not caught.value.retryable
    for key in expected:
        assert f"{key} {expected[key]} != {actual[key]}" in caught.value.message
    wire = caught.value.to_qmtl_error()
    assert wire.code == ErrorCode.ERROR_CODE_INVALID_STATE
    assert wire.details == {"queue": a.name, "expected": expected, "actual": actual}
    assert await my_topics(topics, names) == {a.name: a}  # left as it was


async def test_a_mismatch_still_creates_the_other_topics(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    a, b = names.spec("a"), names.spec("b")
    await topics.ensure_topics([a])
    with pytest.raises(TopicConfigMismatchError):
        await topics.ensure_topics([names.spec("a", partitions=3), b])
    assert await my_topics(topics, names) == {a.name: a, b.name: b}
    assert await topics.ensure_topics([b]) == []


async def test_replication_is_clamped_to_the_cluster_and_that_is_no_mismatch(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    wide = names.spec("a", replication=CONTRACT_BROKERS + 2)
    assert await topics.ensure_topics([wide]) == [wide.name]
    listed = (await my_topics(topics, names))[wide.name]
    assert listed.replication_factor == CONTRACT_BROKERS
    assert await topics.ensure_topics([wide]) == []
    assert await topics.ensure_topics([names.spec("a", replication=CONTRACT_BROKERS)]) == []


async def test_a_spec_without_cleanup_policy_matches_the_broker_default(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    bare = TopicSpec(names("bare"), 1, 1, 60_000)
    assert await topics.ensure_topics([bare]) == [bare.name]
    assert await topics.ensure_topics([bare]) == []
    assert await topics.ensure_topics([names.spec("bare")]) == []  # says "delete" outright
    with pytest.raises(TopicConfigMismatchError) as caught:
        await topics.ensure_topics([names.spec("bare", cleanup="compact")])
    assert caught.value.actual == {"cleanup.policy": "delete"}


async def test_qmtl_metadata_keys_are_not_broker_settings(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    spec = topic_spec_for(names("btc_Node_abcdef12_v1"), "Node")
    small = TopicSpec(spec.name, 1, 1, spec.retention_ms, spec.config)
    assert set(small.config) > {"retention.ms", "cleanup.policy"}  # qmtl.* keys too
    assert await topics.ensure_topics([small]) == [small.name]
    assert await topics.ensure_topics([small]) == []
    listed = (await my_topics(topics, names))[small.name]
    assert (listed.partitions, listed.retention_ms) == (1, spec.retention_ms)
    assert listed.config["retention.ms"] == spec.config["retention.ms"]
    assert listed.config["cleanup.policy"] == "delete"


async def test_ensure_refuses_a_retention_config_other_than_retention_ms(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    with pytest.raises(InvalidTopicError) as caught:
        await topics.ensure_topics([TopicSpec(names("a"), 1, 1, 60_000, {"retention.ms": "5"})])
    assert caught.value.field == "specs[0].config"
    assert await my_topics(topics, names) == {}


async def test_ensure_takes_the_same_spec_twice_once(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    a = names.spec("a")
    assert await topics.ensure_topics([a, a]) == [a.name]


async def test_ensure_refuses_one_name_with_two_specs_and_creates_nothing(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    with pytest.raises(InvalidTopicError) as caught:
        await topics.ensure_topics(
            [names.spec("b"), names.spec("a", partitions=1), names.spec("a", partitions=2)]
        )
    assert caught.value.field == "specs[2]"
    assert not caught.value.retryable
    assert await my_topics(topics, names) == {}


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("", "empty"),
        (".", "reserved"),
        ("..", "reserved"),
        ("has space", "outside"),
        ("slash/topic", "outside"),
        ("ünï", "outside"),
        ("x" * (MAX_TOPIC_NAME_LENGTH + 1), "more than 249"),
    ],
)
async def test_ensure_refuses_an_illegal_name_and_creates_nothing(
    admin: tuple[TopicAdmin, TopicNames], bad: str, why: str
) -> None:
    topics, names = admin
    with pytest.raises(InvalidTopicError) as caught:
        await topics.ensure_topics([names.spec("ok"), TopicSpec(bad, 1, 1, 60_000)])
    assert caught.value.field == "specs[1].name"
    assert why in caught.value.message
    assert await my_topics(topics, names) == {}
    error = caught.value.to_qmtl_error()
    assert error.code == ErrorCode.ERROR_CODE_VALIDATION
    assert error.details == {"field": "specs[1].name"}


async def test_ensure_accepts_a_name_of_exactly_the_maximum_length(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    longest = names("x" * (MAX_TOPIC_NAME_LENGTH - len(names.prefix)))
    assert len(longest) == MAX_TOPIC_NAME_LENGTH
    assert await topics.ensure_topics([TopicSpec(longest, 1, 1, 60_000)]) == [longest]


@pytest.mark.parametrize(
    ("partitions", "replication", "retention", "field"),
    [
        (0, 1, 60_000, "specs[0].partitions"),
        (1, 0, 60_000, "specs[0].replication_factor"),
        (1, 1, -2, "specs[0].retention_ms"),
    ],
)
async def test_ensure_refuses_impossible_sizes(
    admin: tuple[TopicAdmin, TopicNames],
    partitions: int,
    replication: int,
    retention: int,
    field: str,
) -> None:
    topics, names = admin
    with pytest.raises(InvalidTopicError) as caught:
        await topics.ensure_topics([TopicSpec(names("a"), partitions, replication, retention)])
    assert caught.value.field == field
    assert await my_topics(topics, names) == {}


async def test_ensure_accepts_infinite_retention(admin: tuple[TopicAdmin, TopicNames]) -> None:
    topics, names = admin
    forever = TopicSpec(names("forever"), 1, 1, -1, {"retention.ms": "-1"})
    assert await topics.ensure_topics([forever]) == [forever.name]


# --- describe_topics ----------------------------------------------------------------------


async def test_describe_gives_the_existing_topics_and_leaves_unknown_ones_out(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    a, b = names.spec("a", partitions=2), names.spec("b", retention_ms=-1)
    await topics.ensure_topics([a, b])
    described = await topics.describe_topics([b.name, names("unknown"), a.name])
    assert described == {a.name: a, b.name: b}
    assert await topics.describe_topics([]) == {}
    assert await topics.describe_topics([names("unknown")]) == {}
    # describing never creates (a broker with auto-create on would)
    assert set(await my_topics(topics, names)) == {a.name, b.name}


async def test_describe_refuses_an_illegal_name(admin: tuple[TopicAdmin, TopicNames]) -> None:
    topics, names = admin
    with pytest.raises(InvalidTopicError) as caught:
        await topics.describe_topics([names("a"), "bad name"])
    assert caught.value.field == "names[1]"
    assert caught.value.operation == "describe"


# --- delete_topics ------------------------------------------------------------------------


async def test_delete_returns_what_it_deleted_and_ignores_unknown_topics(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    await topics.ensure_topics([names.spec("a"), names.spec("b"), names.spec("c")])
    deleted = await topics.delete_topics([names("c"), names("unknown"), names("a")])
    assert deleted == [names("c"), names("a")]
    assert set(await my_topics(topics, names)) == {names("b")}
    assert await topics.delete_topics([names("a")]) == []


async def test_delete_of_nothing_deletes_nothing(admin: tuple[TopicAdmin, TopicNames]) -> None:
    topics, names = admin
    await topics.ensure_topics([names.spec("a")])
    assert await topics.delete_topics([]) == []
    assert set(await my_topics(topics, names)) == {names("a")}


async def test_delete_refuses_an_illegal_name_and_deletes_nothing(
    admin: tuple[TopicAdmin, TopicNames],
) -> None:
    topics, names = admin
    await topics.ensure_topics([names.spec("a")])
    with pytest.raises(InvalidTopicError) as caught:
        await topics.delete_topics([names("a"), "bad name"])
    assert caught.value.field == "names[1]"
    assert caught.value.operation == "delete"
    assert set(await my_topics(topics, names)) == {names("a")}


async def test_a_deleted_topic_can_be_created_again(admin: tuple[TopicAdmin, TopicNames]) -> None:
    topics, names = admin
    await topics.ensure_topics([names.spec("a", partitions=1)])
    await topics.delete_topics([names("a")])
    assert await topics.ensure_topics([names.spec("a", partitions=2)]) == [names("a")]
    assert (await my_topics(topics, names))[names("a")].partitions == 2


# --- the in-memory adapter's failure injection ---------------------------------------------


async def test_fail_next_fails_that_many_calls_and_changes_nothing() -> None:
    topics = InMemoryTopicAdmin()
    topics.fail_next(2, retryable=True)
    for _ in range(2):
        with pytest.raises(TopicAdminError) as caught:
            await topics.ensure_topics([TopicSpec("a", 1, 1, 1000)])
        assert caught.value.retryable
        assert caught.value.operation == "create"
        assert caught.value.topics == ("a",)
    assert await topics.list_topics() == {}
    assert await topics.ensure_topics([TopicSpec("a", 1, 1, 1000)]) == ["a"]


async def test_fail_next_can_target_one_operation() -> None:
    topics = InMemoryTopicAdmin()
    await topics.ensure_topics([TopicSpec("a", 1, 1, 1000)])
    topics.fail_next(1, retryable=False, operation="delete")
    assert set(await topics.list_topics()) == {"a"}  # listing is not the targeted operation
    with pytest.raises(TopicAdminError) as caught:
        await topics.delete_topics(["a"])
    assert not caught.value.retryable
    assert set(await topics.list_topics()) == {"a"}
    assert await topics.delete_topics(["a"]) == ["a"]


async def test_fail_next_still_validates_first() -> None:
    topics = InMemoryTopicAdmin()
    topics.fail_next(1)
    with pytest.raises(InvalidTopicError):
        await topics.ensure_topics([TopicSpec("bad name", 1, 1, 1000)])
    with pytest.raises(TopicAdminError) as caught:  # the injection is still pending
        await topics.list_topics()
    assert not isinstance(caught.value, InvalidTopicError)


async def test_fail_next_zero_cancels_a_pending_injection() -> None:
    topics = InMemoryTopicAdmin()
    topics.fail_next(3)
    topics.fail_next(0)
    assert await topics.list_topics() == {}


@pytest.mark.parametrize("adapter", TOPIC_ADMIN_ADAPTERS)
async def test_a_closed_admin_refuses_calls_for_good(adapter: str) -> None:
    topics: TopicAdmin = (
        InMemoryTopicAdmin() if adapter == "memory" else await connect_kafka(client_id="closed")
    )
    await topics.aclose()
    await topics.aclose()  # closing twice is harmless
    for call in (
        topics.list_topics(),
        topics.describe_topics(["a"]),
        topics.ensure_topics([TopicSpec("a", 1, 1, 1000)]),
        topics.delete_topics(["a"]),
    ):
        with pytest.raises(TopicAdminError) as caught:
            await call
        assert not caught.value.retryable


def test_an_in_memory_cluster_has_at_least_one_broker() -> None:
    with pytest.raises(InvalidTopicError) as caught:
        InMemoryTopicAdmin(brokers=0)
    assert caught.value.field == "brokers"


def test_create_failures_map_to_queue_create_failed() -> None:
    error = TopicAdminError("boom", operation="create", topics=("a", "b"), attempts=5)
    wire = error.to_qmtl_error()
    assert wire.code == ErrorCode.ERROR_CODE_QUEUE_CREATE_FAILED
    assert wire.retryable
    assert wire.details == {"operation": "create", "queue": "a,b", "attempts": 5}


@pytest.mark.parametrize("operation", ["delete", "list"])
def test_other_failures_map_to_unavailable(operation: str) -> None:
    error = TopicAdminError("down", operation=operation, topics=("a",), retryable=False)  # type: ignore[arg-type]
    wire = error.to_qmtl_error()
    assert wire.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    assert not wire.retryable


# --- config by type (domain.md §2.6) and the GC tag (§4.4) ---------------------------------


@pytest.mark.parametrize(
    ("node_type", "partitions", "replication", "days", "cleanup", "gc_tag"),
    [
        ("RawTicks", 3, 3, 7, None, "raw"),
        ("PriceFeed", 3, 3, 7, None, "raw"),
        ("OHLCVBar", 3, 3, 7, None, "raw"),
        ("ExecutionNode", 1, 3, 90, None, "indicator"),
        ("TradeNode", 1, 3, 90, None, "indicator"),
        ("OrderRouter", 1, 3, 90, None, "indicator"),
        ("PortfolioNode", 1, 3, 90, None, "indicator"),
        ("Node", 1, 2, 30, "delete", "indicator"),
        ("StreamInput", 1, 2, 30, "delete", "indicator"),
        # raw wins over trade/exec, as qmtl checks it first
        ("RawOrderBook", 3, 3, 7, None, "raw"),
        ("VersionSentinel", 1, 2, 30, "delete", "sentinel"),
    ],
)
def test_topic_spec_for_follows_the_config_by_type_table(
    node_type: str,
    partitions: int,
    replication: int,
    days: int,
    cleanup: str | None,
    gc_tag: str,
) -> None:
    spec = topic_spec_for(f"btc_{node_type}_abcdef12_v1", node_type)
    assert (spec.partitions, spec.replication_factor) == (partitions, replication)
    assert spec.retention_ms == days * DAY_MS
    assert spec.config["retention.ms"] == str(days * DAY_MS)
    assert spec.config.get("cleanup.policy") == cleanup
    assert spec.config[GC_TAG_KEY] == gc_tag
    assert spec.gc_tag == gc_tag


def test_a_topic_named_sentinel_gets_the_sentinel_gc_tag_whatever_its_type() -> None:
    assert topic_spec_for("btc_Node_sentinel_v1", "PriceFeed").gc_tag == "sentinel"


def test_topic_spec_for_refuses_an_illegal_name() -> None:
    with pytest.raises(InvalidTopicError):
        topic_spec_for("btc price", "Node")


def test_a_spec_without_a_gc_tag_falls_under_the_default_policy() -> None:
    assert TopicSpec("t", 1, 1, 1000).gc_tag == "indicator"


def test_a_spec_config_is_a_read_only_copy() -> None:
    config = {"retention.ms": "1000"}
    spec = TopicSpec("t", 1, 1, 1000, config)
    config["retention.ms"] = "2"
    assert spec.config["retention.ms"] == "1000"
    with pytest.raises(TypeError):
        spec.config["x"] = "y"  # type: ignore[index]


async def test_ensure_of_nothing_creates_nothing(admin: tuple[TopicAdmin, TopicNames]) -> None:
    topics, names = admin
    assert await topics.ensure_topics([]) == []
    assert await my_topics(topics, names) == {}
