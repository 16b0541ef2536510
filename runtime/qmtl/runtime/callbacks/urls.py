"""Callback URL validation, run when a strategy registers its `callback_url`.

Rules (docs/operations/callbacks.md, "URL rules"): http or https only; no user name or password
in the URL (they would sit in logs, the work queue and every listing); a host; a valid port; no
fragment (it is never sent); at most MAX_URL_LENGTH characters of printable ASCII. None of this
stops a URL from pointing at an internal service, so production should pass `allowed_hosts`.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import SplitResult, urlsplit

from .errors import InvalidCallbackUrlError

MAX_URL_LENGTH = 2048
"""Longest callback URL accepted, in characters (what browsers and most proxies still carry)."""
ALLOWED_SCHEMES = frozenset({"http", "https"})

DEFAULT_FIELD = "callback_url"


def validate_callback_url(
    url: str,
    *,
    field: str = DEFAULT_FIELD,
    allowed_hosts: Collection[str] | None = None,
) -> str:
    """Returns `url` unchanged if it may be registered; InvalidCallbackUrlError (422, naming
    `field`) otherwise.

    `allowed_hosts`, when given, is the only hosts accepted: `hooks.example.com` matches that
    host exactly, `*.example.com` any host below it (not example.com itself); case-insensitive.
    """
    if not url:
        raise InvalidCallbackUrlError("the URL is empty", field=field, reason="empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidCallbackUrlError(
            f"the URL has {len(url)} characters, more than {MAX_URL_LENGTH}",
            field=field,
            reason="too_long",
        )
    # Whitespace and control characters are how request smuggling and log forging start;
    # non-ASCII hosts must come IDNA-encoded (xn--...), as they go on the wire.
    if not all(0x21 <= ord(char) <= 0x7E for char in url):
        raise InvalidCallbackUrlError(
            "the URL may hold only printable ASCII without spaces (percent-encode the rest)",
            field=field,
            reason="characters",
        )
    parts = _split(url, field)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise InvalidCallbackUrlError(
            f"scheme {parts.scheme or '(none)'!r} is not allowed; use http or https",
            field=field,
            reason="scheme",
        )
    if "@" in parts.netloc:
        raise InvalidCallbackUrlError(
            "the URL must not carry credentials (user@ or user:password@)",
            field=field,
            reason="credentials",
        )
    host = parts.hostname
    if not host:
        raise InvalidCallbackUrlError("the URL has no host", field=field, reason="no_host")
    if parts.port == 0:
        raise InvalidCallbackUrlError("port 0 cannot be connected to", field=field, reason="port")
    if parts.fragment or url.endswith("#"):
        raise InvalidCallbackUrlError(
            "the URL must not have a fragment (#...): it is never sent",
            field=field,
            reason="fragment",
        )
    if allowed_hosts is not None and not host_allowed(host, allowed_hosts):
        raise InvalidCallbackUrlError(
            f"host {host!r} is not on the callback allow-list", field=field, reason="host"
        )
    return url


def _split(url: str, field: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed lazily: a bad port raises only here
    except ValueError as exc:
        raise InvalidCallbackUrlError(
            f"the URL cannot be parsed: {exc}", field=field, reason="unparsable"
        ) from exc
    return parts


def host_allowed(host: str, allowed_hosts: Collection[str]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in allowed_hosts:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False
