"""Who may read the dashboard: anonymous visitors, token holders, or nobody (page off).

Anonymous access hands every visitor a short-lived read-only token (`ViewerTokens`) from
/dashboard/session, so the page calls the same authenticated public API as any client, with
the scopes of its reads and nothing more. The token is signed by a secret made at start and
kept in memory: it is not the operators' token secret, it cannot be forged or replayed against
another instance, and restarting the Gateway revokes every one of them.
"""

from __future__ import annotations

import enum
import secrets
from datetime import timedelta

from qmtl.runtime.auth import HmacTokenVerifier, Principal, TokenVerifier, issue_token
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.service_config import Profile

# The scopes of the public reads the page makes (ListStrategies, GetStrategyStatus, ListEvents,
# GetQueuesByTag, GetOverview; GetHealth is anonymous).
VIEWER_SCOPES = ("events:read", "overview:read", "queues:read", "strategies:read")
VIEWER_SUBJECT = "dashboard:anonymous"
VIEWER_KEY_ID = "dashboard-viewer"
# Short, as anyone may have one; the page fetches another when a call answers 401.
VIEWER_TTL = timedelta(minutes=10)


class DashboardAccess(enum.StrEnum):
    AUTO = "auto"  # anonymous under the development profile, token under production
    ANONYMOUS = "anonymous"
    TOKEN = "token"  # the page asks for a service token and sends it as Bearer
    OFF = "off"  # no /dashboard routes


def resolve_access(access: DashboardAccess, profile: Profile) -> DashboardAccess:
    if access is not DashboardAccess.AUTO:
        return access
    if profile is Profile.PRODUCTION:
        return DashboardAccess.TOKEN
    return DashboardAccess.ANONYMOUS


class ViewerTokens:
    """Issues the anonymous viewer tokens and verifies them beside the service's own."""

    def __init__(self, *, ttl: timedelta = VIEWER_TTL) -> None:
        self._secret = secrets.token_bytes(32)
        self._ttl = ttl
        self._verifier = HmacTokenVerifier({VIEWER_KEY_ID: self._secret})

    def issue(self) -> str:
        return issue_token(
            self._secret, VIEWER_SUBJECT, VIEWER_SCOPES, ttl=self._ttl, key_id=VIEWER_KEY_ID
        )

    def verifier(self, service: TokenVerifier) -> TokenVerifier:
        """`service`'s verifier that also accepts the viewer tokens."""
        return _EitherVerifier(service, self._verifier)


class _EitherVerifier:
    def __init__(self, primary: TokenVerifier, viewer: TokenVerifier) -> None:
        self._primary, self._viewer = primary, viewer

    async def verify(self, token: str) -> Principal:
        try:
            return await self._primary.verify(token)
        except QmtlError as refused:
            try:
                return await self._viewer.verify(token)
            except QmtlError:
                # A client's own token was refused: it learns why, not that a viewer key exists.
                raise refused from None
