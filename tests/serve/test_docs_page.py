"""GET /docs on each app: a Redoc page over its /openapi.json, every asset from the app itself."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from qmtl.runtime.http import docs_page
from qmtl.runtime.http.server import QmtlApp, create_internal_app, create_public_app

REPO = Path(__file__).resolve().parents[2]
DOCUMENT = json.dumps({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}}).encode()


class _Links(HTMLParser):
    """Every URL the page makes the browser load: src, href and Redoc's spec-url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href", "spec-url"} and value is not None:
                self.urls.append(value)


def client(app: QmtlApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.mark.parametrize("factory", [create_public_app, create_internal_app])
async def test_docs_page_loads_only_same_origin_assets_the_app_serves(factory: object) -> None:
    app = factory([], openapi=DOCUMENT, title="Toy <API>")  # type: ignore[operator]
    async with client(app) as http:
        page = await http.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "<title>Toy &lt;API&gt;</title>" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp
        assert "default-src 'none'" in csp
        links = _Links()
        links.feed(page.text)
        assert len(links.urls) == 2  # the document and the bundle
        loaded: dict[str, httpx.Response] = {}
        for url in links.urls:
            parts = urlsplit(url)
            # Relative, so same-origin wherever the app is mounted; no CDN, no scheme.
            assert (parts.scheme, parts.netloc) == ("", ""), url
            assert not url.startswith("/"), url
            target = urljoin(str(page.url), url)
            assert urlsplit(target).netloc == "testserver"
            loaded[urlsplit(target).path] = await http.get(target)
    assert set(loaded) == {"/openapi.json", "/docs/redoc.standalone.js"}
    assert loaded["/openapi.json"].content == DOCUMENT
    bundle = loaded["/docs/redoc.standalone.js"]
    assert bundle.status_code == 200
    assert bundle.headers["content-type"] == "text/javascript; charset=utf-8"
    assert bundle.headers["x-content-type-options"] == "nosniff"
    assert bundle.content == docs_page.redoc_bundle()
    assert int(bundle.headers["content-length"]) > 500_000  # the whole bundle, not a stub
    # The footer logo is drawn inline: nothing in the served bundle points at Redoc's CDN.
    assert b"cdn.redoc.ly" not in bundle.content
    assert docs_page.INLINE_LOGO in bundle.content


async def test_docs_page_answers_head_and_refuses_other_methods() -> None:
    app = create_public_app([], openapi=DOCUMENT)
    async with client(app) as http:
        assert (await http.head("/docs")).status_code == 200
        assert (await http.post("/docs")).status_code == 405


async def test_an_app_without_a_document_has_no_docs_page() -> None:
    app = create_internal_app([], openapi=None)
    async with client(app) as http:
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/docs/redoc.standalone.js")).status_code == 404


def test_the_bundle_is_the_version_the_docs_site_pins_and_carries_its_licence() -> None:
    pinned = json.loads((REPO / "docs/site-src/package.json").read_text())["dependencies"]["redoc"]
    assert pinned == docs_page.REDOC_VERSION
    header = docs_page.redoc_bundle()[:4096].decode("utf-8", "replace")
    licence_notes = resources.files("qmtl.runtime.http").joinpath("static")
    notes = licence_notes.joinpath("redoc.standalone.js.LICENSE.txt").read_text()
    assert re.search(r'Version: "([^"]+)"', notes)[1] == pinned  # type: ignore[index]
    assert "redoc.standalone.js.LICENSE.txt" in header
    licence = licence_notes.joinpath("redoc.LICENSE").read_text()
    assert "MIT License" in licence
    assert "Rebilly" in licence or "Redocly" in licence
