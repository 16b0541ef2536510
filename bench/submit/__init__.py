"""bench/submit: submit of a 1,000-node DAG through `qmtl gateway` -> `qmtl dagmanager` on the
real servers and in memory, beside the bare diff (README.md here). Run it as
`python -m bench.submit.run` from the repository root."""
