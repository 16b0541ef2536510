"""Binary encode of a 50-node DAG on the wire: the runtime codec against raw upb.

    .venv/bin/python -m bench.wire.run [--rounds 7] [--seconds 0.3] [--quick]

- ours:          qmtl.runtime.codec.encode(msg, Encoding.PROTOBUF), what every protobuf body
                 (HTTP replies, client requests, error bodies) goes through
- raw upb:       msg.SerializeToString(), the floor
- deterministic: msg.SerializeToString(deterministic=True), for scale: what the wire used
                 before; the callers that need stable bytes (hashes, signatures) still use it

The message is bench/codec's 50-node DAG (bench/codec/workload.py), plain and with a metadata
Struct on every node (Struct is a map, the part deterministic encoding sorts). Contenders
alternate within each round and are timed in CPU time of this process, so other processes on
a loaded machine disturb them little; each round's ratio compares contenders under the same
load, and the figure of merit is the median of the per-round ratios ours / raw upb on the
plain DAG (goal: >= 0.95).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.codec.workload import NODES, dag
from bench.results import RESULTS, Figure, merge_report, print_figures
from qmtl.dag.v1 import dag_pb2
from qmtl.runtime import codec
from qmtl.runtime.codec import Encoding

GOAL = 0.95


def per_cpu_second(call: Callable[[], Any], seconds: float) -> float:
    """Calls per CPU second of `call`, timed over batches for about `seconds` of CPU."""
    batch, done, elapsed = 1, 0, 0.0
    while elapsed < seconds:
        start = time.process_time()
        for _ in range(batch):
            call()
        elapsed += time.process_time() - start
        done += batch
        batch = min(batch * 2, 512)
    return done / elapsed


def measure(
    variant: str, msg: dag_pb2.Dag, rounds: int, seconds: float, details: dict[str, Any]
) -> list[Figure]:
    """Interleaved rounds of the three contenders on `msg`; its figures (goal on `dag` only)."""
    wire = codec.encode(msg, Encoding.PROTOBUF)
    if dag_pb2.Dag.FromString(wire) != msg:
        raise SystemExit(f"{variant}: the codec's binary encoding does not read back")
    print(
        f"\n{variant}: {len(msg.nodes)} nodes, {len(msg.edges)} edges, {len(wire):,} bytes; "
        f"{rounds} rounds of ~{seconds} CPU s per contender"
    )
    contenders: dict[str, Callable[[], Any]] = {
        # Every contender is called through a lambda, so the harness's own call costs the same
        # on each side and the ratio is the codec's.
        "ours": lambda: codec.encode(msg, Encoding.PROTOBUF),
        "raw upb": lambda: msg.SerializeToString(),
        "deterministic": lambda: msg.SerializeToString(deterministic=True),
    }
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for number in range(1, rounds + 1):
        for name, call in contenders.items():
            results[name].append(per_cpu_second(call, seconds))
        ratio = results["ours"][-1] / results["raw upb"][-1]
        print(
            f"  round {number}: "
            + ", ".join(f"{name} {results[name][-1]:,.0f}/s" for name in contenders)
            + f"  (ours / raw upb = {ratio:.3f})"
        )
    median = {name: statistics.median(values) for name, values in results.items()}

    def median_ratio(name: str) -> float:
        pairs = zip(results[name], results["raw upb"], strict=True)
        return statistics.median(ours / raw for ours, raw in pairs)

    ours_ratio, deterministic_ratio = median_ratio("ours"), median_ratio("deterministic")
    print(
        f"  binary encode: ours {median['ours']:,.0f}/s, raw upb {median['raw upb']:,.0f}/s, "
        f"deterministic {median['deterministic']:,.0f}/s; ours / raw upb = {ours_ratio:.3f} "
        f"(median of rounds), deterministic / raw upb = {deterministic_ratio:.3f}"
    )
    suffix = "" if variant == "dag" else f" ({variant})"
    details[variant] = {
        "bytes": len(wire),
        "median_per_cpu_second": {name: round(value, 1) for name, value in median.items()},
        "ratio_ours_to_raw": round(ours_ratio, 4),
        "ratio_deterministic_to_raw": round(deterministic_ratio, 4),
        "round_ratios": [
            round(ours / raw, 4)
            for ours, raw in zip(results["ours"], results["raw upb"], strict=True)
        ],
    }
    return [
        Figure(
            f"binary encode vs raw upb{suffix}",
            median["ours"],
            median["raw upb"],
            "msg/cpu-s",
            GOAL if variant == "dag" else None,
            ratio=ours_ratio,
        ),
        Figure(
            f"deterministic binary encode vs raw upb{suffix}",
            median["deterministic"],
            median["raw upb"],
            "msg/cpu-s",
            None,
            ratio=deterministic_ratio,
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.3, help="CPU s per contender per round")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.1 s (development)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 3, 0.1

    figures: list[Figure] = []
    details: dict[str, Any] = {"nodes": NODES, "rounds": args.rounds, "seconds": args.seconds}
    for variant, with_metadata in (("dag", False), ("dag+metadata", True)):
        figures += measure(variant, dag(metadata=with_metadata), args.rounds, args.seconds, details)
    print_figures("wire", figures)
    merge_report(args.results, "wire", details, figures)
    print(f"figures merged into {args.results} under 'wire'")


if __name__ == "__main__":
    main()
