"""Endpoint variables resolve the same way as in scripts/services/."""

from __future__ import annotations

import pytest

from qmtl.runtime.endpoints import EndpointConfigError, ServiceEndpoints


def test_defaults_are_loopback_with_standard_ports() -> None:
    ep = ServiceEndpoints.from_env({})
    assert ep.redis_url == "redis://127.0.0.1:6379/0"
    assert ep.kafka_bootstrap == "127.0.0.1:9092"
    assert ep.neo4j_uri == "bolt://127.0.0.1:7687"
    assert ep.neo4j_user == "neo4j"


def test_port_variables_move_every_service() -> None:
    ep = ServiceEndpoints.from_env(
        {"QMTL_REDIS_PORT": "6400", "QMTL_KAFKA_PORT": "19092", "QMTL_NEO4J_BOLT_PORT": "17687"}
    )
    assert ep.redis_url == "redis://127.0.0.1:6400/0"
    assert ep.kafka_bootstrap == "127.0.0.1:19092"
    assert ep.neo4j_uri == "bolt://127.0.0.1:17687"


def test_full_url_overrides_port() -> None:
    ep = ServiceEndpoints.from_env(
        {"QMTL_REDIS_URL": "redis://127.0.0.1:7000/2", "QMTL_REDIS_PORT": "1"}
    )
    assert ep.redis_url == "redis://127.0.0.1:7000/2"


@pytest.mark.parametrize("raw", ["abc", "0", "70000", "-5"])
def test_bad_port_is_a_clear_error(raw: str) -> None:
    with pytest.raises(EndpointConfigError, match="QMTL_KAFKA_PORT"):
        ServiceEndpoints.from_env({"QMTL_KAFKA_PORT": raw})
