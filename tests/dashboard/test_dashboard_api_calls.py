"""Every call the dashboard makes is a GET route of the Gateway's public listener, the viewer
token carries exactly the scopes of those calls, and the committed bundle is what the lock file
rebuilds."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from qmtl.gateway.v1.gateway_service_http import GATEWAY_SERVICE_PUBLIC_ROUTES
from qmtl.services.gateway.dashboard import VIEWER_SCOPES
from tests.serve.service_process import REPO

SRC = REPO / "services" / "gateway" / "dashboard-src" / "src"
STATIC = REPO / "services" / "gateway" / "qmtl" / "services" / "gateway" / "dashboard" / "static"
API_PATH = re.compile(r"""["'`](/v1/[^"'`?]*)""")


def page_paths() -> set[str]:
    """Every `/v1/...` string literal in the page's sources."""
    return {m for path in SRC.glob("*.js") for m in API_PATH.findall(path.read_text())}


def public_gets() -> dict[str, set[str]]:
    """Path -> the scopes its rpc requires, for each public GET route."""
    return {
        r.path: set(r.rpc.access.scopes)
        for r in GATEWAY_SERVICE_PUBLIC_ROUTES
        if r.verb == "GET" and r.rpc.access.public
    }


def test_every_api_call_of_the_page_is_a_public_get_route() -> None:
    paths = page_paths()
    assert "/v1/gateway/strategies" in paths  # the scan finds the calls at all
    assert len(paths) >= 5
    routes = public_gets()
    assert not paths - set(routes), f"not public GET routes: {sorted(paths - set(routes))}"


def test_the_bundle_calls_no_other_api_path_than_its_sources() -> None:
    bundled = set(API_PATH.findall((STATIC / "dashboard.js").read_text()))
    assert bundled == page_paths()


def test_the_viewer_token_has_the_scopes_of_the_page_calls_and_no_more() -> None:
    routes = public_gets()
    needed = set().union(*(routes[path] for path in page_paths()))
    assert set(VIEWER_SCOPES) == needed


def test_the_committed_bundle_is_what_the_lock_file_rebuilds(tmp_path: Path) -> None:
    built = subprocess.run(
        ["bash", "scripts/dashboard.sh", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    rebuilt = (tmp_path / "dashboard.js").read_bytes()
    committed = (STATIC / "dashboard.js").read_bytes()
    assert rebuilt == committed, "the bundle is stale: run `make dashboard` and commit it"
