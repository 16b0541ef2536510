"""The versioned Neo4j schema migrations of the global DAG, in the order they are applied.

Labels and schema names are rendered from `GraphNames`, so a test can run the real migrations
on labels of its own (the Community edition has one database, shared by every test) while
production uses the plain names. Labels cannot be Cypher parameters, hence the validated prefix.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,31}")


class InvalidGraphPrefix(Exception):
    """A label prefix that is not a plain identifier (it is spliced into Cypher)."""


@dataclass(frozen=True, slots=True)
class GraphNames:
    """Label and schema-object names, optionally prefixed (tests, side-by-side deployments)."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if self.prefix and not _PREFIX.fullmatch(self.prefix):
            raise InvalidGraphPrefix(
                f"label prefix must match {_PREFIX.pattern}, got {self.prefix!r}"
            )

    def label(self, base: str) -> str:
        return f"{self.prefix}{base}"

    def schema(self, base: str) -> str:
        return f"{self.prefix.lower()}_{base}" if self.prefix else base

    @property
    def compute_node(self) -> str:
        return self.label("ComputeNode")

    @property
    def queue(self) -> str:
        return self.label("Queue")

    @property
    def tag(self) -> str:
        return self.label("Tag")

    @property
    def strategy(self) -> str:
        return self.label("Strategy")

    @property
    def tag_query_answer(self) -> str:
        return self.label("TagQueryAnswer")

    @property
    def outbox_event(self) -> str:
        return self.label("OutboxEvent")

    @property
    def service_marker(self) -> str:
        """A running service instance's clean-shutdown marker (the DAG Manager's boot)."""
        return self.label("ServiceMarker")

    @property
    def data_labels(self) -> tuple[str, ...]:
        """The labels the graph store writes (not the migration bookkeeping)."""
        return (
            self.compute_node,
            self.queue,
            self.tag,
            self.strategy,
            self.tag_query_answer,
            self.outbox_event,
            self.service_marker,
        )

    @property
    def migration(self) -> str:
        return self.label("SchemaMigration")

    @property
    def lock(self) -> str:
        return self.label("SchemaMigrationLock")


class StepKind(Enum):
    CONSTRAINT = "constraint"  # CREATE CONSTRAINT: synchronous, online when it returns
    INDEX = "index"  # CREATE INDEX: populated in the background, awaited by the runner
    DATA = "data"  # a data rewrite, run as an auto-commit query (CALL ... IN TRANSACTIONS)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    kind: StepKind
    render: Callable[[GraphNames], str]
    # The schema object this step creates (None for data steps); its state is shown by --status.
    schema_object: Callable[[GraphNames], str] | None = None

    def cypher(self, names: GraphNames) -> str:
        return self.render(names)

    def checksum(self) -> str:
        """Of the statement for the default names, so a prefix does not change it."""
        return hashlib.sha256(self.cypher(GraphNames()).encode()).hexdigest()[:16]


def _constraint(version: int, base: str, label: str, prop: str) -> Migration:
    def render(n: GraphNames) -> str:
        return (
            f"CREATE CONSTRAINT {n.schema(base)} IF NOT EXISTS "
            f"FOR (x:{n.label(label)}) REQUIRE x.{prop} IS UNIQUE"
        )

    return Migration(version, base, StepKind.CONSTRAINT, render, lambda n: n.schema(base))


def _index(version: int, base: str, label: str, prop: str) -> Migration:
    def render(n: GraphNames) -> str:
        return f"CREATE INDEX {n.schema(base)} IF NOT EXISTS FOR (x:{n.label(label)}) ON (x.{prop})"

    return Migration(version, base, StepKind.INDEX, render, lambda n: n.schema(base))


# Tag lookups must be index-backed. A RANGE/TEXT index on a list property is not used for
# list membership (`$tag IN c.tags`) in Neo4j 5, so each tag is a (:Tag {name}) node under a
# unique constraint and a ComputeNode points at its tags with [:TAGGED]; the lookup starts with
# a unique-index seek on Tag.name and walks the relationships (docs/operations/neo4j.md).
TAG_BACKFILL_BATCH = 1000


def _render_tag_backfill(n: GraphNames) -> str:
    # Graphs written before v4 carry tags only as the `tags` list property; MERGE makes a rerun
    # (or a concurrent writer) harmless, and the batches keep a 100k-node graph within memory.
    return (
        f"MATCH (c:{n.compute_node}) WHERE c.tags IS NOT NULL "
        "CALL { WITH c UNWIND c.tags AS tag WITH c, tag WHERE tag IS NOT NULL "
        f"MERGE (t:{n.tag} {{name: tag}}) MERGE (c)-[:TAGGED]->(t) }} "
        f"IN TRANSACTIONS OF {TAG_BACKFILL_BATCH} ROWS"
    )


MIGRATIONS: tuple[Migration, ...] = (
    _constraint(1, "compute_node_id_unique", "ComputeNode", "node_id"),
    _constraint(2, "queue_topic_unique", "Queue", "topic"),
    _constraint(3, "tag_name_unique", "Tag", "name"),  # the TAG index
    Migration(4, "tag_backfill", StepKind.DATA, _render_tag_backfill),
    _index(5, "compute_node_interval", "ComputeNode", "interval"),
    _index(6, "queue_interval", "Queue", "interval"),
    # The graph store's (qmtl.runtime.graphstore.neo4j): strategy membership is
    # (:Strategy)-[:USES]->(:ComputeNode), and each tag query's answer version one node.
    _constraint(7, "strategy_id_unique", "Strategy", "strategy_id"),
    _constraint(8, "tag_query_answer_key_unique", "TagQueryAnswer", "key"),
    # The transactional outbox (docs/operations/outbox.md): an entry per event id, read by the
    # relay oldest first.
    _constraint(9, "outbox_event_id_unique", "OutboxEvent", "id"),
    _index(10, "outbox_event_created_at", "OutboxEvent", "created_at"),
)
HEAD_VERSION = MIGRATIONS[-1].version
TAG_INDEX_VERSION = 3


def bootstrap_statements(n: GraphNames) -> tuple[str, ...]:
    """Constraints the runner itself relies on (the lock and the records), made before locking."""
    return (
        f"CREATE CONSTRAINT {n.schema('schema_migration_version_unique')} IF NOT EXISTS "
        f"FOR (x:{n.migration}) REQUIRE x.version IS UNIQUE",
        f"CREATE CONSTRAINT {n.schema('schema_migration_lock_unique')} IF NOT EXISTS "
        f"FOR (x:{n.lock}) REQUIRE x.name IS UNIQUE",
    )


def bootstrap_names(n: GraphNames) -> tuple[str, ...]:
    return (n.schema("schema_migration_version_unique"), n.schema("schema_migration_lock_unique"))
