"""The /dashboard routes: the page, its static files and (anonymous access) the viewer token.

Every answer carries a Content-Security-Policy allowing this origin only (no inline script or
style, no frames, no form posts), so a value the page shows can never run as code.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from qmtl.runtime import codec
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.http import server as http_server

from .access import DashboardAccess, ViewerTokens

DASHBOARD_PATH = "/dashboard"
STATIC_PATH = f"{DASHBOARD_PATH}/static"
SESSION_PATH = f"{DASHBOARD_PATH}/session"
# The files the page is made of, and nothing else of the package, are served.
STATIC_FILES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@cache
def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _answer(body: bytes, media_type: str, *, cache: str) -> Response:
    return Response(
        body, media_type=media_type, headers={**SECURITY_HEADERS, "Cache-Control": cache}
    )


def dashboard_routes(access: DashboardAccess, viewer: ViewerTokens | None) -> list[BaseRoute]:
    """GET-only routes of the page under `access` (ANONYMOUS needs `viewer`); none when OFF."""
    if access is DashboardAccess.OFF:
        return []
    if access is DashboardAccess.ANONYMOUS and viewer is None:
        raise ValueError("anonymous dashboard access needs ViewerTokens")
    if access not in (DashboardAccess.ANONYMOUS, DashboardAccess.TOKEN):
        raise ValueError(f"resolve the dashboard access first, got {access}")
    # The page reads its access mode from <body data-access>: no inline script needed.
    page = _static("index.html").replace(b"{{ACCESS}}", access.value.encode())

    async def index(request: Request) -> Response:
        return _answer(page, "text/html; charset=utf-8", cache="no-store")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        media_type = STATIC_FILES.get(name)
        if media_type is None:
            error = QmtlError.not_found(f"the dashboard has no file {name!r}")
            response = http_server.error_response(
                error, request.headers.get("accept"), default=codec.Encoding.JSON
            )
            response.headers.update(SECURITY_HEADERS)
            return response
        return _answer(_static(name), media_type, cache="no-cache")

    routes: list[BaseRoute] = [
        Route(DASHBOARD_PATH, index, methods=["GET"], name="dashboard"),
        Route(f"{STATIC_PATH}/{{name}}", static, methods=["GET"], name="dashboard-static"),
    ]
    if viewer is not None and access is DashboardAccess.ANONYMOUS:

        async def session(request: Request) -> Response:
            body = json.dumps({"token": viewer.issue()}).encode()
            return _answer(body, "application/json", cache="no-store")

        routes.append(Route(SESSION_PATH, session, methods=["GET"], name="dashboard-session"))
    return routes
