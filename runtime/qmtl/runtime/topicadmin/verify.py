"""What every adapter checks the same way: the input of `ensure_topics`, the settings a broker
holds for a spec, and whether an existing topic matches the spec wanted.

A broker sees only its own settings: the `qmtl.*` keys of `TopicSpec.config` are QMTL's
metadata, never sent (Kafka rejects unknown topic configs). `retention.ms` always comes from
`TopicSpec.retention_ms`, and a spec without `cleanup.policy` gets the broker default, so
"as the broker shows it" is one dictionary whichever adapter made the topic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from .errors import InvalidTopicError, Operation, TopicConfigMismatchError
from .spec import QMTL_CONFIG_PREFIX, TopicSpec, check_topic_name, check_topic_spec

RETENTION_KEY: Final = "retention.ms"
CLEANUP_KEY: Final = "cleanup.policy"
# Kafka's own default (log.cleanup.policy); a spec that names no policy gets it.
DEFAULT_CLEANUP_POLICY: Final = "delete"
# The broker settings every described spec carries, whether set on the topic or defaulted.
DESCRIBED_KEYS: Final = (RETENTION_KEY, CLEANUP_KEY)

PARTITIONS: Final = "partitions"
REPLICATION: Final = "replication_factor"


def wanted_specs(specs: Sequence[TopicSpec]) -> dict[str, TopicSpec]:
    """The specs by name, in order, after checking each; the same spec twice counts once,
    one name with two specs is an InvalidTopicError naming the second."""
    wanted: dict[str, TopicSpec] = {}
    for index, spec in enumerate(specs):
        check_topic_spec(spec, field_path=f"specs[{index}]")
        earlier = wanted.setdefault(spec.name, spec)
        if earlier != spec:
            raise InvalidTopicError(
                f"topic {spec.name!r} is given twice with different specs",
                field=f"specs[{index}]",
                topic=spec.name,
            )
    return wanted


def check_names(names: Sequence[str], operation: Operation) -> None:
    """InvalidTopicError (for `operation`) on the first illegal name, e.g. field "names[1]"."""
    for index, name in enumerate(names):
        try:
            check_topic_name(name, field_path=f"names[{index}]")
        except InvalidTopicError as exc:
            raise InvalidTopicError(
                exc.message,
                field=exc.field,
                topic=name,
                operation=operation,
            ) from None


def broker_config(spec: TopicSpec) -> dict[str, str]:
    """The topic configs a broker is asked for: no `qmtl.*` key, `retention.ms` from the spec."""
    config = {k: v for k, v in spec.config.items() if not k.startswith(QMTL_CONFIG_PREFIX)}
    config[RETENTION_KEY] = str(spec.retention_ms)
    return config


def effective_config(spec: TopicSpec) -> dict[str, str]:
    """`broker_config` with the broker's defaults filled in: what describing the topic shows."""
    config = broker_config(spec)
    config.setdefault(CLEANUP_KEY, DEFAULT_CLEANUP_POLICY)
    return config


def clamped_replication(wanted: int, brokers: int | None) -> int:
    """A replication factor a cluster of `brokers` can hold (None: no limit known)."""
    return wanted if brokers is None else max(1, min(wanted, brokers))


def check_matches(
    wanted: TopicSpec,
    actual: TopicSpec,
    actual_config: Mapping[str, str],
    *,
    brokers: int | None,
) -> None:
    """Raises TopicConfigMismatchError unless the existing topic (`actual`, with every config
    the broker reports in `actual_config`) has the wanted partitions, the wanted replication
    clamped to the cluster, and each wanted broker setting. Settings the spec leaves out are
    not compared, so a topic tuned by an operator beyond the spec is still accepted."""
    expected: dict[str, str] = {}
    found: dict[str, str | None] = {}
    if actual.partitions != wanted.partitions:
        expected[PARTITIONS], found[PARTITIONS] = str(wanted.partitions), str(actual.partitions)
    replication = clamped_replication(wanted.replication_factor, brokers)
    if actual.replication_factor != replication:
        expected[REPLICATION] = str(replication)
        found[REPLICATION] = str(actual.replication_factor)
    for key, value in effective_config(wanted).items():
        if actual_config.get(key) != value:
            expected[key], found[key] = value, actual_config.get(key)
    if expected:
        raise TopicConfigMismatchError(wanted.name, expected=expected, actual=found)
