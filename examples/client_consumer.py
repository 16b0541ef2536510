"""Calling a QMTL service with the generated typed clients: sync and async, timeouts, retries,
paging and errors. Needs only `pip install "qmtl-contracts[client]"` (docs/api/CLIENT.md).

    python examples/client_consumer.py PUBLIC_URL INTERNAL_URL TOKEN

prints one JSON object with what each call returned. tests/client/test_clean_venv.py runs it
in a fresh venv against a running DagManagerService and type-checks it with `mypy --strict`.
"""

from __future__ import annotations

import asyncio
import json
import sys

from qmtl.common.v1.paging_pb2 import PageRequest
from qmtl.dagmanager.v1.dag_manager_service_client import (
    AsyncDagManagerServiceClient,
    DagManagerServiceClient,
)
from qmtl.dagmanager.v1.node_messages_pb2 import GetNodeRequest, ListNodesRequest
from qmtl.runtime.client import NO_RETRY, Encoding, ErrorCode, QmtlError, RetryPolicy

# Idempotent calls (GETs) that fail with a retryable error are tried up to 5 times.
PATIENT = RetryPolicy(max_attempts=5, initial_backoff=0.05, max_backoff=1.0)


def describe(error: QmtlError) -> str:
    """One error type for every failure: the server's, or status 0 when no answer came."""
    return f"{error.wire_code} {error.status} retryable={error.retryable}"


def call_sync(public: str, internal: str, token: str) -> dict[str, object]:
    with DagManagerServiceClient(public, internal, token=token, retry=PATIENT) as client:
        node = client.get_node(GetNodeRequest(node_id="blake3:0001"), timeout=5.0)
        first_page = ListNodesRequest(page=PageRequest(page_size=3))
        queues = [item.queue for item in client.iter_list_nodes(first_page)]
        try:
            client.get_node(GetNodeRequest(node_id="missing"), retry=NO_RETRY)
            missing = "found"
        except QmtlError as error:
            if error.code != ErrorCode.ERROR_CODE_NOT_FOUND:
                raise
            missing = describe(error)
    return {"node": node.node.queue, "queues": queues, "missing": missing}


async def call_async(public: str, internal: str, token: str) -> dict[str, object]:
    async with AsyncDagManagerServiceClient(
        public, internal, token=token, encoding=Encoding.JSON
    ) as client:
        node = await client.get_node(GetNodeRequest(node_id="blake3:0002"))
        first_page = ListNodesRequest(page=PageRequest(page_size=2))
        queues = [item.queue async for item in client.iter_list_nodes(first_page)]
    async with AsyncDagManagerServiceClient("http://127.0.0.1:9", retry=NO_RETRY) as nobody:
        try:
            await nobody.get_node(GetNodeRequest(node_id="n"), timeout=2.0)
            unreachable = "answered"
        except QmtlError as error:
            unreachable = describe(error)
    return {"node": node.node.queue, "queues": queues, "unreachable": unreachable}


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    _, public, internal, token = argv
    report = {
        "sync": call_sync(public, internal, token),
        "async": asyncio.run(call_async(public, internal, token)),
    }
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
