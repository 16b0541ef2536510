"""`make generate` against a one-shot grpc_tools.protoc of the same schemas.

    .venv/bin/python -m bench.codegen.run [--rounds 3] [--synthetic 200] [--quick]

Both run in a scratch copy of the schema workspace (schemas/, buf.yaml, buf.gen.yaml,
scripts/generate.sh, the golden fixtures; codegen/, .venv and the tools in .tools are the
repo's own, .tools/state is the workspace's), so the repository is never touched:

- ours:      `FORCE=1 scripts/generate.sh`: buf lint beside every plugin of buf.gen.yaml
             (messages, stubs, gRPC, handlers, HTTP routes and clients, OpenAPI, JSON Schema,
             goldens, reference, changelog, ...) into a staging archive, swapped in (each round
             regenerates everything; only files whose bytes change are rewritten);
- baseline:  `python -m grpc_tools.protoc --python_out --grpc_python_out --mypy_out
             --mypy_grpc_out` on every .proto at once: what the messages and stubs alone cost.

Goals (issue 16): the full run within 3x the baseline on the v1 schemas; the cost per added
.proto file (measured with --synthetic extra files, each a message and a small service) within
3x the baseline's; a no-op rerun (nothing changed) in at most 1 s. The runs alternate, and the
median of --rounds is reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.results import RESULTS, Figure, merge_report, print_figures

ROOT = Path(__file__).resolve().parents[2]
GOAL_FULL_RATIO = 3.0
GOAL_SLOPE_RATIO = 3.0
GOAL_NOOP_SECONDS = 1.0
# What a scratch workspace copies; the rest is linked (read-only for generation). .tools is a
# folder of its own, so that the workspace's no-op stamp stays in it and never replaces the
# repository's (.tools/state).
COPIED = ("schemas", "buf.yaml", "buf.gen.yaml", "scripts/generate.sh", "constraints.txt")
LINKED = (".venv", "codegen", ".tools/bin", ".tools/proto-deps")


def workspace(parent: Path, synthetic: int) -> Path:
    """A scratch schema workspace with `synthetic` extra .proto files."""
    root = Path(tempfile.mkdtemp(prefix="ws-", dir=parent))
    for name in COPIED:
        source, target = ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    for name in LINKED:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(ROOT / name)
    fixtures = root / "tests" / "golden" / "fixtures"
    shutil.copytree(ROOT / "tests" / "golden" / "fixtures", fixtures)
    (root / "docs" / "schemas").mkdir(parents=True)
    for index in range(synthetic):
        write_synthetic(root / "schemas", index)
    return root


def write_synthetic(schemas: Path, index: int) -> None:
    """One lint-clean file: a message with a few fields, and a service with one GET rpc."""
    directory = schemas / "qmtl" / "bench" / "v1"
    directory.mkdir(parents=True, exist_ok=True)
    name = f"Synthetic{index}"
    (directory / f"synthetic{index}.proto").write_text(
        f"""syntax = "proto3";

// Synthetic file {index} of the codegen benchmark.
package qmtl.bench.v1;

import "google/api/annotations.proto";
import "qmtl/api/v1/access.proto";

// Service {index}.
service {name}Service {{
  // Reads one item.
  rpc Get{name}(Get{name}Request) returns (Get{name}Response) {{
    option (google.api.http) = {{get: "/v1/bench/synthetic{index}/{{id}}"}};
    option (qmtl.api.v1.access) = {{
      access: ACCESS_PUBLIC_READ
      required_scopes: "strategies:read"
    }};
  }}
}}

// Request {index}.
message Get{name}Request {{
  // The item.
  string id = 1;
}}

// Response {index}.
message Get{name}Response {{
  // A name.
  string name = 1;
  // A count.
  int64 count = 2;
  // Tags.
  repeated string tags = 3;
}}
""",
        encoding="utf-8",
    )


def protos(root: Path) -> list[str]:
    schemas = root / "schemas"
    return sorted(p.relative_to(schemas).as_posix() for p in schemas.rglob("*.proto"))


def run_ours(root: Path, force: bool = True) -> float:
    env = {**os.environ, "FORCE": "1" if force else "0"}
    return timed(["bash", "scripts/generate.sh"], root, env)


def run_baseline(root: Path) -> float:
    out = root / "baseline-out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    command = [
        str(ROOT / ".venv" / "bin" / "python"),
        "-m",
        "grpc_tools.protoc",
        "-Ischemas",
        "-I.tools/proto-deps",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out=quiet:{out}",
        f"--mypy_grpc_out=quiet:{out}",
        *protos(root),
    ]
    return timed(command, root, env)


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed in {cwd}:\n{result.stderr[-3000:]}")
    return seconds


def measure(root: Path, rounds: int) -> tuple[float, float]:
    """Medians of `rounds` alternating runs (after one warm-up of each): ours, baseline."""
    run_ours(root)
    run_baseline(root)
    ours, base = [], []
    for round_no in range(rounds):
        ours.append(run_ours(root))
        base.append(run_baseline(root))
        print(
            f"    round {round_no + 1}: ours {ours[-1]:.2f} s, baseline {base[-1]:.2f} s",
            flush=True,
        )
    return statistics.median(ours), statistics.median(base)


def main() -> None:
    args = parse_args()
    parent = Path(tempfile.mkdtemp(prefix="qmtl-bench-codegen-"))
    try:
        v1 = workspace(parent, 0)
        files = len(protos(v1))
        print(f"codegen bench: {files} schema files, median of {args.rounds} rounds", flush=True)
        print("  v1 schemas:", flush=True)
        ours_v1, base_v1 = measure(v1, args.rounds)
        noop = statistics.median(run_ours(v1, force=False) for _ in range(3))
        print(f"  v1 schemas + {args.synthetic} synthetic files:", flush=True)
        big = workspace(parent, args.synthetic)
        ours_big, base_big = measure(big, args.rounds)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    slope_ours = (ours_big - ours_v1) / args.synthetic * 1000
    slope_base = (base_big - base_v1) / args.synthetic * 1000
    figures = [
        Figure("make generate, v1 schemas", ours_v1, base_v1, "s", GOAL_FULL_RATIO, True),
        Figure(f"make generate, v1 + {args.synthetic} files", ours_big, base_big, "s", None, True),
        Figure("cost per added .proto file", slope_ours, slope_base, "ms", GOAL_SLOPE_RATIO, True),
        Figure("no-op rerun", noop, None, "s", GOAL_NOOP_SECONDS, True),
    ]
    print_figures("codegen", figures)
    section = "codegen-quick" if args.quick else "codegen"
    details = {
        "schema_files": files,
        "synthetic_files": args.synthetic,
        "rounds": args.rounds,
        "ours_s": round(ours_v1, 3),
        "baseline_s": round(base_v1, 3),
        "ours_with_synthetic_s": round(ours_big, 3),
        "baseline_with_synthetic_s": round(base_big, 3),
        "noop_s": round(noop, 3),
    }
    merge_report(RESULTS, section, details, figures)
    print(f"\nfigures merged into {RESULTS} under {section!r}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--synthetic", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="1 round, 40 synthetic files")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.synthetic = 1, 40
    if args.synthetic < 1 or args.rounds < 1:
        parser.error("--rounds and --synthetic must be at least 1")
    return args


if __name__ == "__main__":
    main()
