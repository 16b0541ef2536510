"""The diff meets a broker topic that already exists under the name it chose: matching, it is
reused as created; with other settings, the diff fails with E_INVALID_STATE naming both."""

from __future__ import annotations

import dataclasses

from qmtl.runtime.errors import ErrorCode
from qmtl.runtime.topicadmin import topic_spec_for
from tests.dag_manager.dag_builders import DagBuilder, chain
from tests.dag_manager.diff_support import expect_rejected, make_env


def one_source() -> tuple[DagBuilder, str]:
    builder = DagBuilder()
    [node_id] = chain(builder, 1)
    return builder, f"btc_StreamInput_{node_id[7:15]}_v1"


async def test_an_existing_topic_with_the_wanted_spec_is_used() -> None:
    env = make_env()
    builder, name = one_source()
    await env.admin.ensure_topics([topic_spec_for(name, "StreamInput")])
    result = await env.service().diff(builder.request())
    assert [q.queue for q in result.queue_map.queues.values()] == [name]


async def test_an_existing_topic_with_other_settings_fails_the_diff_naming_both() -> None:
    env = make_env()
    builder, name = one_source()
    wanted = topic_spec_for(name, "StreamInput")
    await env.admin.ensure_topics([dataclasses.replace(wanted, partitions=wanted.partitions + 4)])
    error = await expect_rejected(
        env, builder.request(), ErrorCode.ERROR_CODE_INVALID_STATE, None, status=409
    )
    assert not error.retryable
    assert error.details["queue"] == name
    assert error.details["expected"] == {"partitions": str(wanted.partitions)}
    assert error.details["actual"] == {"partitions": str(wanted.partitions + 4)}
