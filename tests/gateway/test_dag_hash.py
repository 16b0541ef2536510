"""dag_hash: hex SHA-256 over the sorted, distinct node ids joined by "\\n" (golden vectors)."""

from __future__ import annotations

from qmtl.runtime import nodeid

ONE = "blake3:" + "1" * 64
TWO = "blake3:" + "2" * 64
# printf 'blake3:111...1\nblake3:222...2' | sha256sum  (no trailing newline)
ONE_TWO = "bfad5ef4c50a69347687945e576c8fb4dfdcdd9873e0465a76a5bda3410cf3c8"
ONE_ALONE = "8c688fe3760faf03e03b1ab0d963965d84f14bd04dfbf6433e2781828319219a"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_golden_vectors() -> None:
    assert nodeid.dag_hash([ONE, TWO]) == ONE_TWO
    assert nodeid.dag_hash([ONE]) == ONE_ALONE
    assert nodeid.dag_hash([]) == EMPTY


def test_order_and_repeats_do_not_matter() -> None:
    assert nodeid.dag_hash([TWO, ONE]) == ONE_TWO
    assert nodeid.dag_hash([TWO, ONE, TWO]) == ONE_TWO
    assert nodeid.dag_hash(iter([ONE, TWO])) == ONE_TWO


def test_a_different_set_is_a_different_hash() -> None:
    assert nodeid.dag_hash([ONE, TWO, "blake3:" + "3" * 64]) != ONE_TWO
