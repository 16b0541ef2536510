"""Writes the seed corpus, tests/fuzz/corpus/<target>/seed-*, from the golden fixtures.

Run it after `make generate` adds a request message or route (`.venv/bin/python -m
tests.fuzz.seed`); it rewrites only seed-* files, so inputs saved by hand next to them stay.
Each seed is laid out as its target reads bytes (tests/fuzz/targets.py): the selector of its
message or route, then the body or query string.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from qmtl.runtime.auth import issue_token
from tests.fuzz.targets import (
    BINDING_RING,
    BINDINGS,
    REQUEST_TYPES,
    TOKEN_CLOCK,
    TOKEN_SECRET,
    TYPE_RING,
)
from tests.http.surface import FIXTURES, OPERATIONS, http_module, query_params, request_fixture

CORPUS = Path(__file__).resolve().parent / "corpus"

# Bodies every message is tried with: the shapes a decoder must refuse or take as empty.
_JSON_SHAPES = {
    "empty": b"{}",
    "array": b"[]",
    "null": b"null",
    "string": b'"x"',
    "deep": b"[" * 64,
}
_ACCEPT_SEEDS = {
    "json": "application/json",
    "protobuf": "application/x-protobuf",
    "browser": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "weighted": "application/json;q=0.5, application/x-protobuf;q=0.4, */*;q=0.1",
    "charset": "application/json; charset=UTF-8",
    "wildcard": "application/*",
    "refused": "text/plain",
}


def _short(full_name: str) -> str:
    """`qmtl.gateway.v1.GetStrategyRequest` -> `gateway.GetStrategyRequest`."""
    parts = full_name.split(".")
    return f"{parts[1]}.{parts[-1]}"


def _fixtures(full_name: str, suffix: str) -> Iterator[tuple[str, bytes]]:
    for path in sorted((FIXTURES / full_name).glob(f"*{suffix}")):
        yield path.stem, path.read_bytes()


def decode_seeds() -> Iterator[tuple[str, str, bytes]]:
    for full_name in REQUEST_TYPES:
        selector, short = TYPE_RING.selectors[full_name], _short(full_name)
        for stem, data in _fixtures(full_name, ".binpb"):
            yield "decode_protobuf", f"seed-{short}-{stem}", selector + data
        yield "decode_protobuf", f"seed-{short}-empty", selector
        for stem, data in _fixtures(full_name, ".json"):
            compact = json.dumps(json.loads(data), separators=(",", ":")).encode()
            yield "decode_json", f"seed-{short}-{stem}", selector + compact
        for shape, data in _JSON_SHAPES.items():
            yield "decode_json", f"seed-{short}-{shape}", selector + data


def query_seeds() -> Iterator[tuple[str, str, bytes]]:
    for op in OPERATIONS:
        prefix = http_module(op.service).__name__ + "."
        for name, binding in BINDINGS.items():
            if name.startswith(prefix) and binding.request.DESCRIPTOR is op.method.input_type:
                pairs = query_params(op, request_fixture(op)) if not op.body else ()
                selector = BINDING_RING.selectors[name]
                short = f"{op.service.name}.{op.method.name}"
                yield "query", f"seed-{short}", selector + urlencode(pairs).encode()


def negotiation_seeds() -> Iterator[tuple[str, str, bytes]]:
    for name, value in _ACCEPT_SEEDS.items():
        yield "negotiation", f"seed-{name}", value.encode("latin-1")


def token_seeds() -> Iterator[tuple[str, str, bytes]]:
    valid = issue_token(
        TOKEN_SECRET,
        "fuzz:caller",
        ["strategies:read"],
        ttl=timedelta(minutes=5),
        clock=lambda: TOKEN_CLOCK - timedelta(minutes=1),
    )
    yield "token", "seed-valid", b"\x00" + valid.encode()
    for stem, claims in _fixtures("qmtl.api.v1.ServiceToken", ".binpb"):
        yield "token", f"seed-signed-{stem}", b"\x01" + claims


def all_seeds() -> Iterator[tuple[str, str, bytes]]:
    yield from decode_seeds()
    yield from query_seeds()
    yield from negotiation_seeds()
    yield from token_seeds()


def main() -> int:
    seeds = list(all_seeds())
    for target in {target for target, _, _ in seeds}:
        for stale in (CORPUS / target).glob("seed-*"):
            stale.unlink()
    for target, name, data in seeds:
        (CORPUS / target).mkdir(parents=True, exist_ok=True)
        (CORPUS / target / name).write_bytes(data)
    print(f"wrote {len(seeds)} seed files under {CORPUS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
