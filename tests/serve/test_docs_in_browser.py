"""A served /docs page renders in headless Chromium with every non-loopback request failing.

Chromium is given a proxy that does not exist: a page needing a CDN (script, font, style) would
render nothing, so Redoc listing the document's paths shows the page works offline, and that
its Content-Security-Policy lets the bundle run (inline styles, the search worker).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from qmtl.runtime.http.server import load_document
from qmtl.runtime.serve import ServeConfig, Served
from tests.serve.toy_service import BINDING, VERIFIER, Counter

CHROMIUM_TIMEOUT_S = 120


async def dump_dom(url: str, profile: Path) -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed (make setup installs Debian's chromium package)")
    process = await asyncio.create_subprocess_exec(
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--proxy-server=http://127.0.0.1:9",  # nothing listens: only loopback is reachable
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), CHROMIUM_TIMEOUT_S)
    assert process.returncode == 0, err.decode(errors="replace")[-4000:]
    return out.decode()


async def test_the_docs_page_renders_the_document_without_the_internet(tmp_path: Path) -> None:
    document = load_document("qmtl.gateway.v1", "openapi/gateway.public.openapi.json")
    paths = sorted(json.loads(document)["paths"])
    assert paths
    binding = dataclasses.replace(BINDING, public_openapi=document)
    config = ServeConfig(public_port=0, internal_port=None, grpc_port=None)
    served = Served(Counter(), VERIFIER, binding, config=config)
    runner = asyncio.create_task(served.run())
    try:
        await served.wait_started()
        dom = await dump_dom(f"http://127.0.0.1:{served.public_port}/docs", tmp_path)
    finally:
        served.stop()
        await runner
    assert 'role="menuitem"' in dom  # Redoc ran and built its side menu
    missing = [path for path in paths if path.split("{", 1)[0] not in dom]
    assert not missing, f"Redoc did not render {missing}"
