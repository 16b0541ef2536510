"""JSON encode and decode of a 50-node DAG: the generated codec vs json_format, and raw upb binary.

    .venv/bin/python -m bench.codec.run [--rounds 7] [--seconds 0.4] [--quick]

- generated:   qmtl.runtime.codec.encode/decode with Encoding.JSON (the generated `_json`
               functions and orjson, the path every JSON body takes)
- json_format: what the runtime codec did before: json_format.MessageToDict + json.dumps, and
               json.loads (duplicate keys refused) + json_format.ParseDict + the shape checks
- binary:      raw upb SerializeToString / FromString of the same message, for scale
- floor:       (plain DAG, encode) every field read the generated encode makes, building
               nothing (bench.codec.floor): what any codec reading upb messages through their
               Python attributes pays before printing a byte; its ratio to json_format bounds
               the generated encode's

Each contender runs for about --seconds per round; rounds alternate between contenders, so drift
in the machine's load hits them alike; the median round is reported. The figures of merit are
generated/json_format for encode and decode of the SDK-shaped DAG (goal: >= 10); the same DAG
with a small metadata Struct on every node is reported beside it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.codec.floor import read_fields
from bench.codec.workload import NODES, dag
from bench.results import RESULTS, Figure, merge_report, print_figures
from qmtl.dag.v1 import dag_pb2
from qmtl.runtime import codec
from qmtl.runtime.codec import Encoding

GOAL = 10.0


def reference_encode(msg: dag_pb2.Dag) -> bytes:
    # The runtime codec's JSON encode before the generated codec (runtime/qmtl/runtime/codec.py).
    import json

    from google.protobuf import json_format

    mapped = json_format.MessageToDict(msg)
    return json.dumps(mapped, separators=(",", ":"), ensure_ascii=False).encode()


def reference_decode(data: bytes) -> dag_pb2.Dag:
    msg = dag_pb2.Dag()
    codec._parse_json(data, msg, False)
    return msg


def per_second(call: Callable[[], Any], seconds: float) -> float:
    """Calls per second of `call`, timed over batches for about `seconds`."""
    batch, done, elapsed = 1, 0, 0.0
    while elapsed < seconds:
        start = time.perf_counter()
        for _ in range(batch):
            call()
        elapsed += time.perf_counter() - start
        done += batch
        batch = min(batch * 2, 256)
    return done / elapsed


def _ratios(results: dict[str, list[float]], op: str) -> list[float]:
    # Per round: the two contenders ran back to back, so a slow drift in the machine's load
    # mostly cancels in their ratio (the figure itself stays the ratio of the medians).
    pairs = zip(results[f"{op} generated"], results[f"{op} json_format"], strict=True)
    return [ours / base for ours, base in pairs]


def measure(
    variant: str, msg: dag_pb2.Dag, rounds: int, seconds: float, details: dict[str, Any]
) -> list[Figure]:
    """Interleaved rounds of the contenders on `msg`; its figures (goals on `dag` only)."""
    json_body = codec.encode(msg, Encoding.JSON)
    binary = msg.SerializeToString()
    if codec.decode(dag_pb2.Dag, json_body, Encoding.JSON) != msg:
        raise SystemExit(f"{variant}: the generated codec does not read back its own DAG")
    if reference_decode(reference_encode(msg)) != msg:
        raise SystemExit(f"{variant}: json_format does not read back its own DAG")
    print(
        f"\n{variant}: {len(msg.nodes)} nodes, {len(msg.edges)} edges, JSON {len(json_body):,} "
        f"bytes, binary {len(binary):,} bytes; {rounds} rounds of ~{seconds} s per contender"
    )
    contenders: dict[str, Callable[[], Any]] = {
        "encode generated": lambda: codec.encode(msg, Encoding.JSON),
        "encode json_format": lambda: reference_encode(msg),
        "encode binary": lambda: msg.SerializeToString(),
        "decode generated": lambda: codec.decode(dag_pb2.Dag, json_body, Encoding.JSON),
        "decode json_format": lambda: reference_decode(json_body),
        "decode binary": lambda: dag_pb2.Dag.FromString(binary),
    }
    if variant == "dag":
        contenders["encode floor"] = lambda: read_fields(msg)
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for number in range(1, rounds + 1):
        for name, call in contenders.items():
            results[name].append(per_second(call, seconds))
        print(
            f"  round {number}: "
            + ", ".join(f"{name} {results[name][-1]:,.0f}/s" for name in contenders)
            + "; generated/json_format: "
            + ", ".join(f"{op} {_ratios(results, op)[-1]:.1f}x" for op in ("encode", "decode"))
        )
    median = {name: statistics.median(values) for name, values in results.items()}
    goal = GOAL if variant == "dag" else None
    figures = []
    for op in ("encode", "decode"):
        ours, base = median[f"{op} generated"], median[f"{op} json_format"]
        raw = median[f"{op} binary"]
        print(
            f"  {op}: generated {ours:,.0f}/s, json_format {base:,.0f}/s ({ours / base:.1f}x; "
            f"median of the rounds' own ratios {statistics.median(_ratios(results, op)):.1f}x), "
            f"raw upb binary {raw:,.0f}/s (generated = {ours / raw:.3f}x binary)"
        )
        figures.append(Figure(f"{variant} json {op} vs json_format", ours, base, "msg/s", goal))
        figures.append(Figure(f"{variant} json {op} vs upb binary", ours, raw, "msg/s", None))
        if op == "encode" and "encode floor" in median:
            floor = median["encode floor"]
            print(
                f"  encode floor (field reads only, nothing built): {floor:,.0f}/s "
                f"({floor / base:.1f}x json_format; generated = {ours / floor:.2f}x floor)"
            )
            figures.append(
                Figure(
                    f"{variant} json encode field-read floor vs json_format",
                    floor,
                    base,
                    "msg/s",
                    None,
                )
            )
    details[variant] = {
        "json_bytes": len(json_body),
        "binary_bytes": len(binary),
        "median_per_second": {name: round(value, 1) for name, value in median.items()},
    }
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.4, help="per contender per round")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.15 s (development)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 3, 0.15

    figures: list[Figure] = []
    details: dict[str, Any] = {"nodes": NODES, "rounds": args.rounds, "seconds": args.seconds}
    for variant, with_metadata in (("dag", False), ("dag+metadata", True)):
        figures += measure(variant, dag(metadata=with_metadata), args.rounds, args.seconds, details)
    print_figures("codec", figures)
    merge_report(args.results, "codec", details, figures)


if __name__ == "__main__":
    main()
