"""The /dashboard routes under each access mode, their headers, and the viewer tokens."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from qmtl.runtime.auth import HmacTokenVerifier, issue_token
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.http.server import create_public_app
from qmtl.runtime.service_config import Profile
from qmtl.services.gateway.dashboard import (
    VIEWER_SCOPES,
    DashboardAccess,
    ViewerTokens,
    dashboard_routes,
    resolve_access,
)

SECRET = b"service-secret"


def client(access: DashboardAccess, viewer: ViewerTokens | None = None) -> httpx.AsyncClient:
    app = Starlette(routes=dashboard_routes(access, viewer))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


@pytest.mark.parametrize(
    ("profile", "access"),
    [(Profile.DEVELOPMENT, DashboardAccess.ANONYMOUS), (Profile.PRODUCTION, DashboardAccess.TOKEN)],
)
def test_auto_is_anonymous_in_development_and_token_in_production(
    profile: Profile, access: DashboardAccess
) -> None:
    assert resolve_access(DashboardAccess.AUTO, profile) is access
    for chosen in (DashboardAccess.ANONYMOUS, DashboardAccess.TOKEN, DashboardAccess.OFF):
        assert resolve_access(chosen, profile) is chosen


async def test_anonymous_page_static_files_and_session() -> None:
    viewer = ViewerTokens()
    async with client(DashboardAccess.ANONYMOUS, viewer) as http:
        page = await http.get("/dashboard")
        assert page.status_code == 200
        assert 'data-access="anonymous"' in page.text
        assert "<script>" not in page.text  # the script is a file: the CSP allows no inline one
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        script = await http.get("/dashboard/static/dashboard.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.headers["content-security-policy"] == csp
        style = await http.get("/dashboard/static/dashboard.css")
        assert style.headers["content-type"].startswith("text/css")
        # Only the page's files: not the HTML template, not anything else of the package.
        for name in ("index.html", "access.py", "nothing.js"):
            missing = await http.get(f"/dashboard/static/{name}")
            assert missing.status_code == 404, name
            assert missing.json()["code"] == "E_NOT_FOUND"
            assert missing.headers["content-security-policy"] == csp
        for path in ("../__init__.py", "..%2F__init__.py", "%2E%2E/routes.py"):
            assert (await http.get(f"/dashboard/static/{path}")).status_code == 404, path
        session = await http.get("/dashboard/session")
        assert session.status_code == 200
        assert session.headers["cache-control"] == "no-store"
        principal = await viewer.verifier(HmacTokenVerifier(SECRET)).verify(session.json()["token"])
        assert principal.scopes == frozenset(VIEWER_SCOPES)
        assert (await http.post("/dashboard")).status_code == 405


async def test_token_mode_asks_for_a_token_and_hands_none_out() -> None:
    async with client(DashboardAccess.TOKEN) as http:
        page = await http.get("/dashboard")
        assert 'data-access="token"' in page.text
        assert (await http.get("/dashboard/session")).status_code == 404


def test_off_serves_nothing_and_anonymous_needs_viewer_tokens() -> None:
    assert dashboard_routes(DashboardAccess.OFF, None) == []
    with pytest.raises(ValueError, match="ViewerTokens"):
        dashboard_routes(DashboardAccess.ANONYMOUS, None)
    with pytest.raises(ValueError, match="resolve"):
        dashboard_routes(DashboardAccess.AUTO, ViewerTokens())


def test_the_routes_pass_the_public_listener_get_only_check() -> None:
    create_public_app(dashboard_routes(DashboardAccess.ANONYMOUS, ViewerTokens()), openapi=None)


async def test_the_verifier_takes_service_and_viewer_tokens_and_keeps_the_service_refusal() -> None:
    viewer = ViewerTokens()
    verifier = viewer.verifier(HmacTokenVerifier(SECRET))
    service = issue_token(SECRET, "sdk:alice", ["strategies:submit"])
    assert (await verifier.verify(service)).subject == "sdk:alice"
    assert (await verifier.verify(viewer.issue())).subject == "dashboard:anonymous"
    forged = issue_token(b"another secret", "sdk:mallory", ["strategies:admin"])
    with pytest.raises(QmtlError) as direct:
        await HmacTokenVerifier(SECRET).verify(forged)
    with pytest.raises(QmtlError) as combined:
        await verifier.verify(forged)
    assert combined.value.message == direct.value.message
    # Another process's viewer tokens are not this one's.
    with pytest.raises(QmtlError):
        await verifier.verify(ViewerTokens().issue())
