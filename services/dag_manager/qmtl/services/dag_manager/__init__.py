"""DAG Manager service: the global DAG in Neo4j and the Kafka topics of its nodes."""
