"""The report of `make breaking` (scripts/breaking.sh): buf's findings, then our own.

python -m qmtl_codegen.breaking_report latest [RELEASES_DIR]
    prints the latest baseline's path, or nothing when none is published yet.
python -m qmtl_codegen.breaking_report report --label L --buf-report F --buf-status N
        [--baseline IMAGE --current IMAGE] [--source-root schemas]
    reprints buf's JSON lines as `file:line:col: message (RULE_ID)` (its text format leaves
    the rule id out), adds qmtl_codegen.contract_checks' findings between the two images,
    prints the count and exits with buf's status, or 100 (buf's code for violations) when
    only our checks found something.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qmtl_codegen.contract_checks import compare
from qmtl_codegen.releases import RELEASES_DIR, ReleaseError, latest_release, load_image

# What `buf breaking` exits with when it found violations.
BREAKING_EXIT = 100


def _reprint_buf(report: Path) -> tuple[int, int]:
    """(rule violations, compile errors) of buf's JSON report, each printed as one line."""
    rules = compile_errors = 0
    for line in report.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            found = json.loads(line)
        except ValueError:
            found = None
        if isinstance(found, dict) and "type" in found:
            line_col = f"{found.get('start_line', 0)}:{found.get('start_column', 0)}"
            where = f"{found.get('path', '?')}:{line_col}"
            print(f"{where}: {found.get('message', '')} ({found['type']})")
            if found["type"] == "COMPILE":
                compile_errors += 1
            else:
                rules += 1
        else:
            print(line, end="")
    return rules, compile_errors


def report(args: argparse.Namespace) -> int:
    rules, compile_errors = _reprint_buf(Path(args.buf_report))
    if compile_errors:
        print(f"breaking: the schemas do not compile ({compile_errors} error(s))", file=sys.stderr)
        return args.buf_status or 1
    if args.buf_status not in (0, BREAKING_EXIT):
        print(
            f"breaking: buf breaking failed (exit {args.buf_status}) before comparing",
            file=sys.stderr,
        )
        return int(args.buf_status)
    baseline, current = Path(args.baseline), Path(args.current)
    if not (baseline.is_file() and current.is_file()):
        errors = Path(args.build_errors).read_text(encoding="utf-8") if args.build_errors else ""
        print(errors, end="", file=sys.stderr)
        print("breaking: buf build failed, so the option checks could not run", file=sys.stderr)
        return 1
    try:
        findings = compare(load_image(baseline), load_image(current))
    except ReleaseError as exc:
        print(f"breaking: {exc}", file=sys.stderr)
        return 1
    for finding in findings:
        print(finding.format(args.source_root))
    own = len(findings)
    if rules or own:
        print(f"breaking: {rules + own} breaking change(s) against {args.label}", file=sys.stderr)
        return int(args.buf_status) or BREAKING_EXIT
    print(f"breaking: no breaking change against {args.label}")
    return 0


def latest(args: argparse.Namespace) -> int:
    try:
        release = latest_release(Path(args.releases_dir))
    except ReleaseError as exc:
        print(f"breaking: {exc}", file=sys.stderr)
        return 2
    if release is not None:
        print(release.path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qmtl_codegen.breaking_report")
    commands = parser.add_subparsers(dest="command", required=True)
    find = commands.add_parser("latest", help="print the latest baseline's path")
    find.add_argument("releases_dir", nargs="?", default=str(RELEASES_DIR))
    find.set_defaults(run=latest)
    rep = commands.add_parser("report", help="print buf's and our findings; exit as buf does")
    rep.add_argument("--label", required=True, help="what was compared against, for the summary")
    rep.add_argument("--buf-report", required=True, help="buf breaking --error-format json output")
    rep.add_argument("--buf-status", type=int, required=True)
    rep.add_argument("--baseline", required=True, help="image of the older schemas")
    rep.add_argument("--current", required=True, help="image of the work tree, with source info")
    rep.add_argument("--build-errors", help="what buf build printed, shown if an image is missing")
    rep.add_argument("--source-root", default="schemas", help="module directory of the images")
    rep.set_defaults(run=report)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
