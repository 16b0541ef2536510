"""The Neo4j started by scripts/services/neo4j.sh is real: Bolt, authentication, write, read.

Uses the official async `neo4j` driver like any client of a Neo4j server. The address and login
come from `endpoints` (QMTL_NEO4J_URI, else bolt://127.0.0.1:$QMTL_NEO4J_BOLT_PORT;
QMTL_NEO4J_USER, QMTL_NEO4J_PASSWORD). A node with a unique token is written, read back and
deleted; wrong credentials must be refused, which proves authentication is on. A server that
does not answer fails the test, never skips it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase
from neo4j.exceptions import AuthError, ServiceUnavailable

from qmtl.runtime.endpoints import ServiceEndpoints

CONNECT_TIMEOUT_S = 10.0
DATABASE = "neo4j"


def _unreachable(uri: str, exc: BaseException) -> str:
    return (
        f"Neo4j is not reachable at {uri} ({exc!r}); start it with "
        "`make services-up` or `scripts/services/neo4j.sh start`"
    )


async def _connected_driver(uri: str, user: str, password: str) -> AsyncDriver:
    """A driver that has proved it can reach and log in to the server."""
    driver = AsyncGraphDatabase.driver(
        uri, auth=(user, password), connection_timeout=CONNECT_TIMEOUT_S
    )
    try:
        await driver.verify_connectivity()
    except ServiceUnavailable as exc:
        await driver.close()
        pytest.fail(_unreachable(uri, exc))
    except BaseException:
        await driver.close()
        raise
    return driver


@pytest.fixture
async def driver(endpoints: ServiceEndpoints) -> AsyncIterator[AsyncDriver]:
    driver = await _connected_driver(
        endpoints.neo4j_uri, endpoints.neo4j_user, endpoints.neo4j_password
    )
    yield driver
    await driver.close()


async def test_node_is_written_read_back_and_deleted(driver: AsyncDriver) -> None:
    token = f"smoke-{uuid.uuid4()}"
    try:
        await driver.execute_query(
            "CREATE (n:QmtlSmoke {token: $token, written_at: datetime()})",
            token=token,
            database_=DATABASE,
        )
        records, _, _ = await driver.execute_query(
            "MATCH (n:QmtlSmoke {token: $token}) RETURN n.token AS token, n.written_at AS at",
            token=token,
            database_=DATABASE,
        )
        assert [record["token"] for record in records] == [token]
        assert records[0]["at"] is not None
    finally:
        await driver.execute_query(
            "MATCH (n:QmtlSmoke {token: $token}) DETACH DELETE n", token=token, database_=DATABASE
        )
    records, _, _ = await driver.execute_query(
        "MATCH (n:QmtlSmoke {token: $token}) RETURN count(n) AS left",
        token=token,
        database_=DATABASE,
    )
    assert records[0]["left"] == 0


async def test_wrong_credentials_are_refused(endpoints: ServiceEndpoints) -> None:
    wrong = AsyncGraphDatabase.driver(
        endpoints.neo4j_uri,
        auth=(endpoints.neo4j_user, endpoints.neo4j_password + "-wrong"),
        connection_timeout=CONNECT_TIMEOUT_S,
    )
    try:
        with pytest.raises(AuthError):
            await wrong.verify_connectivity()
    except ServiceUnavailable as exc:
        pytest.fail(_unreachable(endpoints.neo4j_uri, exc))
    finally:
        await wrong.close()
    # The right password is still accepted (which also resets Neo4j's failed-login counter).
    right = await _connected_driver(
        endpoints.neo4j_uri, endpoints.neo4j_user, endpoints.neo4j_password
    )
    await right.close()
