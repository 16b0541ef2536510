"""`qmtl node-id` run as the installed console script, as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_nodeid import MA5_ID, MA20_ID, NULL_HASH, SIG_ID, SRC_ID, TQ_ID

QMTL = Path(sys.executable).with_name("qmtl")


def run(*args: str, stdin: str | bytes = b"") -> subprocess.CompletedProcess[str]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run([str(QMTL), *args], input=data, capture_output=True, timeout=60)
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def node(spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"spec": spec, **extra}


def s1_dag() -> dict[str, Any]:
    base = {"nodeType": "Node", "interval": "60", "schemaCompatId": "ind-v1", "codeHash": "code-ma"}
    return {
        "schemaVersion": "v1",
        "nodes": [
            node(
                {
                    "nodeType": "StreamInput",
                    "interval": "60",
                    "period": "30",
                    "paramsJson": "{}",
                    "schemaCompatId": "ohlcv-v1",
                    "codeHash": NULL_HASH,
                },
                tags=["BTC", "price"],
            ),
            node(
                base
                | {
                    "period": 5,
                    "paramsJson": '{"window":5,"field":"close"}',
                    "dependencies": [SRC_ID],
                },
                nodeId="ignored",
            ),
            node(
                base
                | {
                    "period": 20,
                    "paramsJson": '{"field":"close","window":20}',
                    "dependencies": [SRC_ID],
                }
            ),
            node(
                {
                    "nodeType": "Node",
                    "interval": 60,
                    "period": 1,
                    "paramsJson": '{"threshold":0.0}',
                    "dependencies": [MA20_ID, MA5_ID],
                    "schemaCompatId": "sig-v1",
                    "codeHash": "code-sig",
                }
            ),
            node(
                {
                    "nodeType": "TagQueryNode",
                    "interval": 60,
                    "period": 24,
                    "schemaCompatId": "tq-v1",
                    "codeHash": NULL_HASH,
                    "tagQuery": {
                        "tags": ["price", "BTC", "price"],
                        "matchMode": "MATCH_MODE_ANY",
                        "interval": "60",
                    },
                },
                kind="NODE_KIND_TAG_QUERY",
            ),
        ],
    }


EXPECTED = f"{SRC_ID}\n{MA5_ID}\n{MA20_ID}\n{SIG_ID}\n{TQ_ID}\ncrc32: 220170483\n"


def test_console_script_is_installed_with_help() -> None:
    assert QMTL.exists() or shutil.which("qmtl"), "pip install -e . did not install `qmtl`"
    top = run("--help")
    assert top.returncode == 0
    assert "node-id" in top.stdout
    sub = run("node-id", "--help")
    assert sub.returncode == 0
    assert "FILE" in sub.stdout


def test_node_id_from_stdin() -> None:
    done = run("node-id", "-", stdin=json.dumps(s1_dag()))
    assert (done.returncode, done.stdout, done.stderr) == (0, EXPECTED, "")


def test_node_id_from_file(tmp_path: Path) -> None:
    path = tmp_path / "dag.json"
    path.write_text(json.dumps(s1_dag()), encoding="utf-8")
    done = run("node-id", str(path))
    assert (done.returncode, done.stdout) == (0, EXPECTED)


def test_node_id_does_not_validate_edges() -> None:
    dag = {"nodes": [node({"nodeType": "Node", "dependencies": ["missing"]})]}
    done = run("node-id", "-", stdin=json.dumps(dag))
    assert done.returncode == 0
    assert done.stdout.splitlines()[-1].startswith("crc32: ")


def test_empty_dag_prints_only_the_checksum() -> None:
    done = run("node-id", "-", stdin="{}")
    assert (done.returncode, done.stdout) == (0, "crc32: 0\n")


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"paramsJson": '{"a":NaN}'}, "node 1: spec.params_json: NaN is not allowed"),
        ({"paramsJson": '{"a":1,"a":2}'}, "node 1: spec.params_json: duplicate key 'a'"),
        (
            {"schemaCompatId": "x", "schemaId": "y"},
            "E_SCHEMA_COMPAT_MISMATCH: node 1: spec.schema_id",
        ),
    ],
)
def test_rule_violation_exits_2_with_one_line(spec: dict[str, Any], needle: str) -> None:
    dag = {"nodes": [node({"nodeType": "StreamInput"}), node({"nodeType": "Node"} | spec)]}
    line = one_error_line(run("node-id", "-", stdin=json.dumps(dag)))
    assert needle in line


def test_tag_query_interval_mismatch_exits_2() -> None:
    dag = {
        "nodes": [
            node(
                {
                    "nodeType": "TagQueryNode",
                    "interval": 60,
                    "tagQuery": {"tags": ["a"], "interval": 300},
                }
            )
        ]
    }
    line = one_error_line(run("node-id", "-", stdin=json.dumps(dag)))
    assert "E_VALIDATION: node 0: spec.tag_query.interval" in line


@pytest.mark.parametrize(
    "stdin",
    [
        b"{not json",
        b'{"nodes": [{"spec": {"nodeType": "A"}}, {"spec": {"noSuchField": 1}}]}',
        b'{"nodes": [], "nodes": []}',
        b"\xff\xfe",
        b"\n",
        b"[]",
        b" null",
    ],
)
def test_bad_json_exits_2_with_one_line(stdin: bytes) -> None:
    line = one_error_line(run("node-id", "-", stdin=stdin))
    assert line.startswith("qmtl node-id: ")


def test_bad_node_json_names_its_index() -> None:
    stdin = '{"nodes": [{"spec": {"nodeType": "A"}}, {"spec": {"noSuchField": 1}}]}'
    line = one_error_line(run("node-id", "-", stdin=stdin))
    assert "nodes[1]" in line


def test_missing_file_exits_2(tmp_path: Path) -> None:
    line = one_error_line(run("node-id", str(tmp_path / "absent.json")))
    assert "cannot read" in line
