"""Strategy SDK: builds the DAG, computes node IDs, submits to the Gateway, runs what is new."""
