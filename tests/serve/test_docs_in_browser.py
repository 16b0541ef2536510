"""A served /docs page renders in headless Chromium with every non-loopback request failing.

Chromium is given a proxy that does not exist: a page needing a CDN (script, font, style) would
render nothing, so Redoc listing the document's paths shows the page works offline, and that
its Content-Security-Policy lets the bundle run (inline styles, the search worker).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

from qmtl.runtime.http.server import load_document
from qmtl.runtime.serve import ServeConfig, Served
from tests.chromium import dump_dom
from tests.serve.toy_service import BINDING, VERIFIER, Counter


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
