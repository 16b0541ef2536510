"""bench/graph: tag lookups at 100k ComputeNodes and the diff of a 1,000-node DAG on the real
Neo4j (README.md here). Run it as `python -m bench.graph.run` from the repository root."""
