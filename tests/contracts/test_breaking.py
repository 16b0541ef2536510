"""`make breaking` (scripts/breaking.sh) stops wire-breaking schema edits and lets additions pass.

Each test commits the current schemas in a scratch git repository, edits them, and runs the
same script `make breaking` runs against that commit.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.contracts.scratch import Run, edit

QUEUE = "schemas/qmtl/dag/v1/queue.proto"


@pytest.fixture
def repo(workspace: Path, run: Run) -> Path:
    git = ("git", "-c", "user.name=qmtl-test", "-c", "user.email=test@qmtl.invalid")
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "base")):
        result = run(*git, *args, cwd=workspace)
        assert result.returncode == 0, result.stderr
    return workspace


def breaking(repo: Path, run: Run) -> tuple[int, str]:
    result = run("bash", "scripts/breaking.sh", "main", cwd=repo)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "buf_says", "rule"),
    [
        pytest.param(
            "int64 interval = 4;",
            "int32 interval = 4;",
            'changed type from "int64" to "int32"',
            "FIELD_SAME_TYPE",
            id="field-type-change",
        ),
        pytest.param(
            "string node_id = 3;",
            "string node_id = 6;",
            'Previously present field "3" with name "node_id" on message "QueueDescriptor"',
            "FIELD_NO_DELETE",
            id="field-renumber",
        ),
        pytest.param(
            "  // Tags of the emitting node.\n  repeated string tags = 5;\n",
            "",
            'Previously present field "5" with name "tags" on message "QueueDescriptor"',
            "FIELD_NO_DELETE",
            id="field-removed",
        ),
        pytest.param(
            'bool is_global = 2 [json_name = "global"];',
            'bool is_global = 2 [json_name = "shared"];',
            'changed option "json_name" from "global" to "shared"',
            "FIELD_SAME_JSON_NAME",
            id="json-name-renamed",
        ),
    ],
)
def test_breaking_edit_fails_with_bufs_message_and_rule_id(
    repo: Path, run: Run, old: str, new: str, buf_says: str, rule: str
) -> None:
    edit(repo / QUEUE, old, new)
    code, output = breaking(repo, run)
    assert code != 0
    # docs/schemas/VERSIONING.md names violations by rule id: `file:line:col: message (RULE)`.
    line = re.compile(rf"^{re.escape(QUEUE)}:\d+:\d+: .*{re.escape(buf_says)}.* \({rule}\)$", re.M)
    assert line.search(output), output
    assert "1 breaking change(s) against main" in output


def test_several_breaks_each_print_their_rule_id(repo: Path, run: Run) -> None:
    edit(repo / QUEUE, "int64 interval = 4;", "int32 interval = 4;")
    edit(repo / QUEUE, "  // Tags of the emitting node.\n  repeated string tags = 5;\n", "")
    code, output = breaking(repo, run)
    assert code == 100, output  # buf's exit code for violations, passed through
    assert re.search(r"\(FIELD_SAME_TYPE\)$", output, re.M), output
    assert re.search(r"\(FIELD_NO_DELETE\)$", output, re.M), output
    assert "2 breaking change(s) against main" in output


def test_schema_that_does_not_compile_fails_as_such(repo: Path, run: Run) -> None:
    with (repo / QUEUE).open("a") as schema:
        schema.write("\nmessage Broken {\n")
    code, output = breaking(repo, run)
    assert code != 0
    assert re.search(rf"^{re.escape(QUEUE)}:\d+:\d+: .* \(COMPILE\)$", output, re.M), output
    assert "the schemas do not compile" in output
    assert "breaking change(s)" not in output


def test_added_field_and_message_pass(repo: Path, run: Run) -> None:
    edit(
        repo / QUEUE,
        "  repeated string tags = 5;\n}",
        "  repeated string tags = 5;\n  // Owner of the queue.\n  string owner = 6;\n}",
    )
    with (repo / QUEUE).open("a") as schema:
        schema.write("\n// QueueOwner names who runs a queue.\nmessage QueueOwner {\n")
        schema.write("  // Owner name.\n  string name = 1;\n}\n")
    code, output = breaking(repo, run)
    assert code == 0, output
    assert "no breaking change against main" in output


def test_unchanged_schemas_pass(repo: Path, run: Run) -> None:
    code, output = breaking(repo, run)
    assert code == 0, output
