"""The `/docs` page each app serves: Redoc over the app's own `/openapi.json`, offline.

The Redoc bundle is package data (`static/redoc.standalone.js`, the version docs/site-src pins,
MIT: `static/redoc.LICENSE`) served by the app itself, so the page needs no CDN and works on a
machine without internet access. Every URL in the page is relative, so it keeps working behind
a proxy that mounts the app under a prefix: from `<prefix>/docs`, `openapi.json` resolves to
`<prefix>/openapi.json` and `docs/redoc.standalone.js` to `<prefix>/docs/redoc.standalone.js`.
"""

from __future__ import annotations

import functools
import html
from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

DOCS_PATH = "/docs"
REDOC_PATH = "/docs/redoc.standalone.js"
REDOC_VERSION = "2.5.4"  # tests/serve/test_docs_page.py checks it against docs/site-src

# Same-origin only. Redoc styles itself with inline <style> (styled-components), starts its
# search index in a Worker built from a blob: URL and draws logos from data: URLs.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# The bundle only changes with the runtime release; a day keeps reloads cheap without
# pinning a browser to an old bundle across an upgrade for long.
_ASSET_MAX_AGE = 86400

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
</head>
<body>
<redoc spec-url="openapi.json"></redoc>
<script src="docs/redoc.standalone.js"></script>
</body>
</html>
"""


# Redoc's sidebar footer always loads its logo from a CDN (an <img>, whatever the options). The
# served copy points it at an inline SVG instead, so the page asks the network for nothing (the
# CSP would refuse the request, but the browser would still attempt it); docs/site-src/build.mjs
# does the same for the static site.
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
INLINE_LOGO = b"data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22/%3E"


class BundleError(RuntimeError):
    """The vendored bundle is not the one this module was written for (a Redoc upgrade)."""


@functools.cache
def redoc_bundle() -> bytes:
    """The vendored Redoc bundle, read once (about 1 MiB) on the first request for it."""
    path = resources.files("qmtl.runtime.http").joinpath("static/redoc.standalone.js")
    bundle = path.read_bytes()
    uses = bundle.count(REDOC_LOGO)
    if uses != 1:
        raise BundleError(f"redoc.standalone.js names the CDN logo {uses} times, expected once")
    return bundle.replace(REDOC_LOGO, INLINE_LOGO)


def page(title: str) -> str:
    """The HTML of the docs page titled `title` (escaped)."""
    return _PAGE.format(title=html.escape(title))


def docs_routes(title: str) -> list[Route]:
    """GET `/docs` (the page) and GET `/docs/redoc.standalone.js` (the bundle); HEAD follows.

    Mount them only in an app that serves `/openapi.json`: the page renders that document.
    """
    body = page(title).encode()

    async def docs(request: Request) -> Response:
        return HTMLResponse(body, headers={"Content-Security-Policy": _CSP})

    async def redoc(request: Request) -> Response:
        return Response(
            redoc_bundle(),
            media_type="text/javascript; charset=utf-8",
            headers={
                "Cache-Control": f"public, max-age={_ASSET_MAX_AGE}",
                "X-Content-Type-Options": "nosniff",
            },
        )

    return [
        Route(DOCS_PATH, docs, methods=["GET"], name="docs"),
        Route(REDOC_PATH, redoc, methods=["GET"], name="docs-redoc"),
    ]
