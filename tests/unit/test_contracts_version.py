"""The contracts-version rule (qmtl.runtime.contracts_version) and where its version comes from.

A peer of another major is refused with E_CONTRACT_VERSION naming both versions; any minor or
patch of a supported major is served; no header is served; a malformed one is a 400.
"""

from __future__ import annotations

import pytest

from qmtl.common import contracts_version as generated
from qmtl.events.v1 import event_pb2
from qmtl.runtime import contracts_version, gen, metrics
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.eventbus.model import UndecodableRecord, decode, encode
from qmtl_codegen.releases import VERSION_FILE, format_version, read_current_version

SPOKEN = contracts_version.SPOKEN
MAJOR = contracts_version.parse(SPOKEN)[0]  # type: ignore[index]


def refusals(transport: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "qmtl_contracts_version_refusals_total", {"transport": transport}
    )
    return value or 0.0


def test_the_spoken_version_is_the_generated_one_of_schemas_version() -> None:
    assert SPOKEN == generated.CONTRACTS_VERSION == format_version(read_current_version())
    assert VERSION_FILE.read_text().strip() == SPOKEN
    assert MAJOR in contracts_version.SUPPORTED_MAJORS


@pytest.mark.parametrize("header", [None, "", "  "])
def test_a_peer_without_the_header_is_served(header: str | None) -> None:
    assert contracts_version.check_peer(header) is None


@pytest.mark.parametrize(
    "header",
    [SPOKEN, f"{MAJOR}.0.0", f"{MAJOR}.99.3", f"{MAJOR}.0.12", f" {MAJOR}.4.1 "],
)
def test_any_minor_or_patch_of_a_supported_major_is_served(header: str) -> None:
    assert contracts_version.check_peer(header) is None


@pytest.mark.parametrize("header", [f"{MAJOR + 1}.0.0", f"{MAJOR + 7}.2.1", f"{MAJOR - 1}.9.9"])
def test_another_major_is_refused_with_412_naming_both_versions(header: str) -> None:
    error = contracts_version.check_peer(header)

    assert error is not None
    assert error.code == ErrorCode.ERROR_CODE_CONTRACT_VERSION
    assert error.wire_code == "E_CONTRACT_VERSION"
    assert (error.http_status, error.info.grpc_code) == (412, 9)  # 9: FAILED_PRECONDITION
    assert header in error.message
    assert SPOKEN in error.message
    assert error.details == {
        "header": "qmtl-contracts-version",
        "peer_version": header,
        "version": SPOKEN,
    }


@pytest.mark.parametrize("header", ["1", "1.0", "v1.0.0", "1.0.0-rc1", "01.0.0", "1.0.0.0", "x"])
def test_a_malformed_header_is_a_400_invalid_argument(header: str) -> None:
    error = contracts_version.check_peer(header)

    assert error is not None
    assert error.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT
    assert error.http_status == 400
    assert repr(header) in error.message


def test_admit_raises_the_refusal_and_counts_it_by_transport() -> None:
    before = refusals("http")
    contracts_version.admit(f"{MAJOR}.3.0", "http")
    contracts_version.admit(None, "http")
    assert refusals("http") == before

    with pytest.raises(QmtlError) as caught:
        contracts_version.admit(f"{MAJOR + 1}.0.0", "http")

    assert caught.value.wire_code == "E_CONTRACT_VERSION"
    assert refusals("http") == before + 1


def test_a_supported_range_without_the_version_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The rule reads the range when it runs, so a runtime of another range refuses us too.
    monkeypatch.setattr(contracts_version, "SUPPORTED_MAJORS", frozenset({MAJOR + 1}))

    error = contracts_version.check_peer(SPOKEN)

    assert error is not None
    assert error.wire_code == "E_CONTRACT_VERSION"
    assert f"major version {MAJOR + 1} only" in error.message


def test_generated_code_of_a_supported_major_imports() -> None:
    contracts_version.check_generated(f"{MAJOR}.42.0", "qmtl.x.v1.x_handler")
    gen.check_version(gen.CONTRACT_VERSION, "qmtl.x.v1.x_handler", f"{MAJOR}.1.0")
    # Modules generated before the contracts version was passed: the contract alone.
    gen.check_version(gen.CONTRACT_VERSION, "qmtl.x.v1.x_handler")


@pytest.mark.parametrize("version", [f"{MAJOR + 1}.0.0", "not-a-version"])
def test_generated_code_of_another_major_refuses_to_import(version: str) -> None:
    with pytest.raises(ImportError) as caught:
        gen.check_version(gen.CONTRACT_VERSION, "qmtl.x.v1.x_handler", version)

    message = str(caught.value)
    assert "qmtl.x.v1.x_handler" in message
    assert f"contracts {version}" in message
    assert f"contracts {SPOKEN}" in message


def test_the_runtime_contract_is_checked_before_the_contracts_version() -> None:
    with pytest.raises(ImportError, match="runtime contract 99"):
        gen.check_version(99, "qmtl.x.v1.x_handler", f"{MAJOR + 1}.0.0")


def _event() -> event_pb2.Event:
    return event_pb2.Event(id="e-1", type="qmtl.test.happened", subject="s-1")


def _with_version(version: bytes) -> list[tuple[str, bytes]]:
    wire = encode(_event())
    return [
        (name, version if name == "qmtl-contracts-version" else raw) for name, raw in wire.headers
    ]


def test_every_event_carries_the_spoken_version() -> None:
    assert ("qmtl-contracts-version", SPOKEN.encode()) in encode(_event()).headers


def test_an_event_of_another_major_is_undecodable_and_counted() -> None:
    wire = encode(_event())
    newer = f"{MAJOR + 1}.0.0".encode()
    before = refusals("kafka")

    with pytest.raises(UndecodableRecord) as caught:
        decode(wire.value, _with_version(newer))

    assert newer.decode() in caught.value.reason
    assert SPOKEN in caught.value.reason
    assert refusals("kafka") == before + 1


@pytest.mark.parametrize("version", [f"{MAJOR}.0.0", f"{MAJOR}.9.1"])
def test_an_event_of_a_supported_major_decodes(version: str) -> None:
    wire = encode(_event())

    assert decode(wire.value, _with_version(version.encode())) == _event()


def test_an_event_with_a_malformed_version_is_undecodable() -> None:
    wire = encode(_event())

    with pytest.raises(UndecodableRecord, match=r"MAJOR\.MINOR\.PATCH"):
        decode(wire.value, _with_version(b"one"))
