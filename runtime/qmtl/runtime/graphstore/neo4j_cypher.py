"""The Cypher of the Neo4j GraphStore, rendered once per label set.

Values are always parameters; only labels are spliced in, and they come from `GraphNames`,
which validates its prefix (labels cannot be parameters). Batches are `UNWIND $rows` / `$ids`.
Model (docs/operations/graph-store.md, domain.md §5.2):
(c:ComputeNode {node_id, ...})-[:EMITS]->(q:Queue {topic, interval, created_at}),
(c)-[:TAGGED]->(t:Tag {name}), (s:Strategy {strategy_id})-[:USES]->(c),
(a:TagQueryAnswer {key, etag, version}), (o:OutboxEvent {id, topic, payload, created_at, seq}).
"""

from __future__ import annotations

from dataclasses import dataclass

from qmtl.runtime.graph_migrations.steps import GraphNames


@dataclass(frozen=True, slots=True)
class Statements:
    lock_nodes: str
    read_nodes: str
    topic_owners: str
    create_nodes: str
    update_nodes: str
    tag_nodes: str
    add_refs: str
    get_nodes: str
    lookup_any: str
    lookup_all: str
    release: str
    orphans: str
    delete_queues: str
    record_answer: str
    write_snapshot: str
    clear_snapshot: str
    read_snapshot: str
    outbox_write: str
    outbox_pending: str
    outbox_ack: str


def _lookup(n: GraphNames, *, all_tags: bool) -> str:
    # The lookup starts from the TAG index (a unique-index seek on Tag.name; the PROFILE test in
    # tests/integration/test_graphstore_neo4j.py holds the planner to it) and only then expands
    # TAGGED. On a graph behind its migrations the same query falls back to a label scan and
    # still answers, only slower (the boot check reports that state).
    # MATCH_MODE_ALL expands only the rarest wanted tag (the degree count is read from the
    # node, not counted) and checks the others on the node's `tags` list, which holds the
    # same tags as its TAGGED edges: a common tag (a feature kind on thousands of nodes) then
    # costs nothing. A wanted tag no node carries has no Tag node, and the answer is empty.
    if all_tags:
        start = (
            f"MATCH (t:{n.tag}) WHERE t.name IN $tags "
            "WITH collect(t) AS found, count(DISTINCT t.name) AS names WHERE names = $wanted "
            "UNWIND found AS t WITH t ORDER BY COUNT { (t)<-[:TAGGED]-() } LIMIT 1 "
            f"MATCH (c:{n.compute_node})-[:TAGGED]->(t) "
            "WHERE ($interval = 0 OR c.interval = $interval) "
            "AND all(x IN $tags WHERE x IN c.tags) "
        )
    else:
        start = (
            f"MATCH (t:{n.tag}) WHERE t.name IN $tags "
            f"MATCH (c:{n.compute_node})-[:TAGGED]->(t) "
            "WHERE $interval = 0 OR c.interval = $interval "
            "WITH DISTINCT c "
        )
    return (
        f"{start}"
        f"MATCH (c)-[:EMITS]->(q:{n.queue}) "
        "WITH q, c ORDER BY q.topic "
        f"RETURN collect({_TAGGED_ROW}) AS rows"
    )


# Statements that answer many rows answer ONE record holding a list of positional rows: the
# Python driver spends ~0.1 ms on each record it streams, ten times the cost of a list item,
# which made a 1,000-node read take 100+ ms of pure decoding (bench/graph).
_TAGGED_ROW = "[q.topic, c.node_id, c.interval, c.tags, c.global]"
# StoredNode's fields in neo4j.py's _stored order.
_STORED_ROW = (
    "[c.node_id, c.node_type, q.topic, c.interval, c.period, c.tags, c.dependencies, "
    "c.code_hash, c.schema_compat_id, c.schema_hash, c.params_canon, c.global, c.created_at, "
    "COUNT { (c)<-[:USES]-() }, c.orphaned_since, coalesce(c.rev, 0)]"
)
_ORPHAN_ROW = (
    "[q.topic, c.node_id, c.node_type, c.interval, c.tags, c.created_at, c.orphaned_since]"
)


def statements(n: GraphNames) -> Statements:
    cn, queue = n.compute_node, n.queue
    return Statements(
        # Write-locks the stored nodes a call is about to change, in id order (fewer
        # deadlocks), so what the checks read stays true until commit: a concurrent
        # delete_queues, release or apply on the same node waits for us, and we for it.
        lock_nodes=(
            f"UNWIND $ids AS id MATCH (c:{cn} {{node_id: id}}) "
            "SET c.lock_probe = true REMOVE c.lock_probe"
        ),
        read_nodes=(
            f"UNWIND $ids AS id MATCH (c:{cn} {{node_id: id}}) "
            f"OPTIONAL MATCH (c)-[:EMITS]->(q:{queue}) "
            "RETURN collect([c.node_id, q.topic, c.tags, c.schema_hash, c.global, "
            "coalesce(c.rev, 0)]) AS rows"
        ),
        topic_owners=(
            f"UNWIND $topics AS topic MATCH (c:{cn})-[:EMITS]->(q:{queue} {{topic: topic}}) "
            "RETURN q.topic AS topic, c.node_id AS node_id"
        ),
        # CREATE, not MERGE: the unique constraints turn a concurrent creator of the same node
        # or topic into a ConstraintError, and the adapter re-reads and decides again.
        create_nodes=(
            f"UNWIND $rows AS r CREATE (c:{cn}) SET c = r.props, "
            "c.created_at = $now, c.orphaned_since = $now "
            f"CREATE (c)-[:EMITS]->(:{queue} {{topic: r.topic, interval: r.props.interval, "
            "created_at: $now})"
        ),
        update_nodes=(
            f"UNWIND $rows AS r MATCH (c:{cn} {{node_id: r.node_id}}) "
            "SET c.tags = r.tags, c.schema_hash = r.schema_hash, c.global = r.global, "
            "c.rev = coalesce(c.rev, 0) + 1"
        ),
        # $pairs come sorted by (tag, node_id): every writer locks Tag nodes in the same
        # order, so two applies sharing tags wait for each other instead of deadlocking.
        tag_nodes=(
            f"UNWIND $pairs AS p MATCH (c:{cn} {{node_id: p.node_id}}) "
            f"MERGE (t:{n.tag} {{name: p.tag}}) MERGE (c)-[:TAGGED]->(t)"
        ),
        add_refs=(
            f"MERGE (s:{n.strategy} {{strategy_id: $strategy_id}}) "
            f"WITH s UNWIND $ids AS id MATCH (c:{cn} {{node_id: id}}) "
            "MERGE (s)-[:USES]->(c) SET c.orphaned_since = null"
        ),
        get_nodes=(
            f"UNWIND $ids AS id MATCH (c:{cn} {{node_id: id}}) "
            f"OPTIONAL MATCH (c)-[:EMITS]->(q:{queue}) "
            f"RETURN collect({_STORED_ROW}) AS rows"
        ),
        lookup_any=_lookup(n, all_tags=False),
        lookup_all=_lookup(n, all_tags=True),
        # Deleting a USES edge locks its node, so the NOT EXISTS below sees every other
        # strategy's edge committed before it: the last one out sets orphaned_since.
        release=(
            f"MATCH (:{n.strategy} {{strategy_id: $strategy_id}})-[u:USES]->(c:{cn}) "
            "DELETE u WITH DISTINCT c WHERE NOT EXISTS { (c)<-[:USES]-() } "
            "SET c.orphaned_since = $now RETURN c.node_id AS node_id ORDER BY node_id"
        ),
        orphans=(
            f"MATCH (c:{cn}) WHERE c.orphaned_since IS NOT NULL AND c.orphaned_since <= $cutoff "
            f"MATCH (c)-[:EMITS]->(q:{queue}) "
            "WITH c, q ORDER BY c.orphaned_since, c.node_id LIMIT $limit "
            f"RETURN collect({_ORPHAN_ROW}) AS rows"
        ),
        # Lock first, then check: a strategy that references the node meanwhile either
        # committed before (we see its USES and keep the node) or waits for our delete.
        delete_queues=(
            f"UNWIND range(0, size($topics) - 1) AS i "
            f"MATCH (c:{cn})-[:EMITS]->(q:{queue} {{topic: $topics[i]}}) "
            "SET c.lock_probe = true REMOVE c.lock_probe "
            "WITH i, c, q WHERE NOT EXISTS { (c)<-[:USES]-() } "
            "DETACH DELETE c, q RETURN i ORDER BY i"
        ),
        # The probe write-locks the answer node before its etag is read, so two recorders of
        # one key are serialised and a version is never handed out twice.
        record_answer=(
            f"MERGE (a:{n.tag_query_answer} {{key: $key}}) ON CREATE SET a.version = 0 "
            "SET a.lock_probe = true "
            "WITH a, (a.version = 0 OR a.etag <> $etag) AS changed "
            "SET a.version = a.version + CASE WHEN changed THEN 1 ELSE 0 END, a.etag = $etag "
            "REMOVE a.lock_probe RETURN a.version AS version, changed"
        ),
        # A snapshot holds while the strategy's nodes are the same set with the same sum of
        # revs (every rewrite of a node bumps its rev; refs only grow until a release, which
        # clears the snapshot): one aggregate over the USES edges, no rows to the client.
        write_snapshot=(
            f"MATCH (s:{n.strategy} {{strategy_id: $strategy_id}}) "
            f"OPTIONAL MATCH (s)-[:USES]->(c:{cn}) "
            "WITH s, count(c) AS used, sum(coalesce(c.rev, 0)) AS revs "
            "SET s.snapshot_key = $key, s.snapshot_payload = $payload, "
            "s.snapshot_count = used, s.snapshot_revs = revs"
        ),
        clear_snapshot=(
            f"MATCH (s:{n.strategy} {{strategy_id: $strategy_id}}) "
            "REMOVE s.snapshot_key, s.snapshot_payload, s.snapshot_count, s.snapshot_revs"
        ),
        read_snapshot=(
            f"MATCH (s:{n.strategy} {{strategy_id: $strategy_id}}) WHERE s.snapshot_key = $key "
            f"OPTIONAL MATCH (s)-[:USES]->(c:{cn}) "
            "WITH s, count(c) AS used, sum(coalesce(c.rev, 0)) AS revs "
            "WHERE used = s.snapshot_count AND revs = s.snapshot_revs "
            "RETURN s.snapshot_payload AS payload"
        ),
        # MERGE on the unique id: a message written twice (a retried call) is one entry.
        # `seq` orders the entries of one transaction, which share `created_at`.
        outbox_write=(
            f"UNWIND $rows AS r MERGE (o:{n.outbox_event} {{id: r.id}}) "
            "ON CREATE SET o.topic = r.topic, o.payload = r.payload, o.created_at = $now, "
            "o.seq = r.seq"
        ),
        outbox_pending=(
            f"MATCH (o:{n.outbox_event}) WITH o ORDER BY o.created_at, o.seq, o.id "
            "LIMIT $limit RETURN collect([o.id, o.topic, o.payload, o.created_at]) AS rows"
        ),
        outbox_ack=(
            f"UNWIND $ids AS id MATCH (o:{n.outbox_event} {{id: id}}) DELETE o "
            "RETURN count(*) AS removed"
        ),
    )
