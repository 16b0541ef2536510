"""The test templates stay honest: each is rendered for messages and a port that exist, and the
copy must pass `ruff` with the repo's settings and then pass pytest, as a contributor's would.

The rendered files run in a pytest of their own (a subprocess from the repository root), so
nothing of this suite's fixtures or imports leaks into them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from string import Template

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).resolve().parent
RUFF = ROOT / ".venv/bin/ruff"
TIMEOUT_S = 300

GOLDEN = {
    "PageInfo": {
        "full_name": "qmtl.common.v1.PageInfo",
        "cls": "paging_pb2.PageInfo",
        "imports": "from qmtl.common.v1 import paging_pb2",
        "construct": 'paging_pb2.PageInfo(next_page_token="page-3", total_size=41)',
    },
    # A well-known type inside: google.protobuf.Struct has its own JSON mapping.
    "DagMeta": {
        "full_name": "qmtl.dag.v1.DagMeta",
        "cls": "dag_pb2.DagMeta",
        "imports": "from google.protobuf.struct_pb2 import Struct, Value\n\n"
        "from qmtl.dag.v1 import dag_pb2",
        "construct": "dag_pb2.DagMeta(\n"
        '        version="2.3.0-rc1",\n'
        '        strategy_version="2.3.0",\n'
        '        build_version="9f1c2ab",\n'
        '        extra=Struct(fields={"desk": Value(string_value="rates")}),\n'
        "    )",
    },
}

PORT = {
    "port": "TopicAdmin",
    "port_module": "qmtl.runtime.topicadmin",
    "adapters_doc": "in-memory and Kafka",
    "support_module": "tests.contract.topicadmin_support",
    "adapters": "TOPIC_ADMIN_ADAPTERS",
    "opener": "open_topic_admin",
    "scope": "TopicNames",
}


def render(template: str, values: dict[str, str], out: Path) -> Path:
    text = Template((TEMPLATES / template).read_text()).substitute(values)
    out.write_text(text)
    return out


def check_lint(path: Path) -> None:
    # Import order depends on the names put in, so it is fixed first, as an editor would; the
    # rest of the copy must pass `make lint` as it is.
    for args in (["check", "--fix", "--select", "I"], ["check"], ["format", "--check"]):
        done = subprocess.run(
            [str(RUFF), *args, "--config", str(ROOT / "pyproject.toml"), str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, f"ruff {' '.join(args)} on the rendered {path.name}:\n" + (
            done.stdout + done.stderr
        )


def pytest_in_subprocess(path: Path) -> subprocess.CompletedProcess[str]:
    config = ["--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml")]
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(path), "-q", "-p", "no:cacheprovider", *config],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def run_pytest(path: Path) -> str:
    done = pytest_in_subprocess(path)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def passed(output: str) -> int:
    match = re.search(r"(\d+) passed", output)
    assert match, output
    assert not re.search(r"\d+ (skipped|failed|error)", output), output
    return int(match.group(1))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_template_renders_and_passes_for_an_existing_message(
    name: str, tmp_path: Path
) -> None:
    rendered = render("golden_message_test.py.tmpl", GOLDEN[name], tmp_path / f"test_{name}.py")
    check_lint(rendered)
    fixtures = list((ROOT / "tests/golden/fixtures" / GOLDEN[name]["full_name"]).glob("*.binpb"))
    # 1 + one per fixture + 1 + two encodings + 1.
    assert passed(run_pytest(rendered)) == 5 + len(fixtures)


def test_golden_template_fails_when_the_built_message_leaves_a_field_unset(
    tmp_path: Path,
) -> None:
    values = {**GOLDEN["PageInfo"], "construct": 'paging_pb2.PageInfo(next_page_token="page-3")'}
    rendered = render("golden_message_test.py.tmpl", values, tmp_path / "test_unset.py")
    done = pytest_in_subprocess(rendered)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "build() leaves ['total_size'] unset" in done.stdout


def test_port_template_renders_and_passes_on_every_adapter(tmp_path: Path) -> None:
    rendered = render("port_contract_test.py.tmpl", PORT, tmp_path / "test_port_contract.py")
    check_lint(rendered)
    # Three tests, each on the in-memory adapter and on Kafka.
    assert passed(run_pytest(rendered)) == 6


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.tmpl")))
def test_every_template_is_rendered_by_a_test_here(template: str) -> None:
    assert template in Path(__file__).read_text(), f"{template} has no rendering test"
