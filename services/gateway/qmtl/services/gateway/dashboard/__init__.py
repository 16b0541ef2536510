"""The Gateway's read-only dashboard at /dashboard on its public listener.

A static page (static/index.html, dashboard.css and dashboard.js, the latter bundled by
scripts/dashboard.sh from services/gateway/dashboard-src) that polls the public GET API.
access.py decides who may read it; routes.py serves it. docs/operations/dashboard.md.
"""

from .access import VIEWER_SCOPES, DashboardAccess, ViewerTokens, resolve_access
from .routes import DASHBOARD_PATH, dashboard_routes

__all__ = [
    "DASHBOARD_PATH",
    "VIEWER_SCOPES",
    "DashboardAccess",
    "ViewerTokens",
    "dashboard_routes",
    "resolve_access",
]
