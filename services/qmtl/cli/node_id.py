"""`qmtl node-id FILE|-`: the node ids and checksum of a proto3-JSON `qmtl.dag.v1.Dag`.

It computes, it does not validate edges. Exit 0 with one id per node then `crc32: N`; exit 2
with one line on stderr (the node index and the problem) for unreadable input, bad JSON or a
node-id rule violation.
"""

from __future__ import annotations

import argparse
import sys

from qmtl.cli.registry import Command

EXIT_BAD_INPUT = 2


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="proto3-JSON qmtl.dag.v1.Dag; `-` for stdin")


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.buffer.read().decode("utf-8")
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8")


def _fail(message: str) -> int:
    # One line whatever the message: a JSON parser's text may carry newlines.
    print("qmtl node-id: " + " ".join(message.split()), file=sys.stderr)
    return EXIT_BAD_INPUT


def _run(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from qmtl.dag.v1 import dag_pb2
    from qmtl.runtime import nodeid
    from qmtl.runtime.errors import QmtlError

    try:
        text = _read(args.file)
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        return _fail(f"{args.file} is not UTF-8: {exc.reason} at byte {exc.start}")
    if not text.lstrip(" \t\r\n").startswith("{"):
        # json_format.Parse takes `[]` for an empty message; a Dag is a JSON object.
        return _fail("not a proto3-JSON qmtl.dag.v1.Dag: the input is not a JSON object")
    dag = dag_pb2.Dag()
    try:
        json_format.Parse(text, dag)
    except (json_format.ParseError, RecursionError) as exc:
        return _fail(f"not a proto3-JSON qmtl.dag.v1.Dag: {exc or type(exc).__name__}")
    try:
        ids = nodeid.node_ids(dag.nodes)
    except QmtlError as exc:
        return _fail(f"{exc.wire_code}: {exc.message}")
    for node_id in ids:
        print(node_id)
    print(f"crc32: {nodeid.node_ids_crc32(ids)}")
    return 0


COMMAND = Command(
    name="node-id",
    help="print the node ids of a proto3-JSON Dag (FILE or - for stdin), then their crc32",
    configure=_configure,
    run=_run,
)
