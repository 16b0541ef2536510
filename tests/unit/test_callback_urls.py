"""Callback URL validation at registration: what is accepted, and each refusal as a typed 422
naming the field."""

from __future__ import annotations

import pytest

from qmtl.runtime.callbacks import MAX_URL_LENGTH, InvalidCallbackUrlError, validate_callback_url


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/qmtl",
        "http://127.0.0.1:8080/cb?token=abc",
        "HTTPS://Example.COM",
        "https://[::1]:8443/x",
        "https://xn--bcher-kva.example/path%20with%20space",
    ],
)
def test_accepted(url: str) -> None:
    assert validate_callback_url(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("ftp://example.com/x", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("example.com/hook", "scheme"),
        ("https://user:secret@example.com/x", "credentials"),
        ("https://token@example.com/x", "credentials"),
        ("https://:pw@example.com/x", "credentials"),
        ("https:///path", "no_host"),
        ("https://:443/path", "no_host"),
        ("https://example.com:99999/", "unparsable"),
        ("https://example.com:abc/", "unparsable"),
        ("https://[::1/", "unparsable"),
        ("https://example.com:0/", "port"),
        ("https://example.com/x#frag", "fragment"),
        ("https://example.com/x#", "fragment"),
        ("https://example.com/a b", "characters"),
        ("https://example.com/\r\nX-Injected: 1", "characters"),
        ("https://bücher.example/", "characters"),
        ("https://example.com/" + "a" * MAX_URL_LENGTH, "too_long"),
    ],
)
def test_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidCallbackUrlError) as caught:
        validate_callback_url(url, field="strategy.callback_url")
    error = caught.value
    assert error.reason == reason
    assert error.http_status == 422
    assert error.wire_code == "E_VALIDATION"
    assert error.details["field"] == "strategy.callback_url"
    assert error.to_proto().details["field"] == "strategy.callback_url"


def test_the_length_limit_is_inclusive() -> None:
    base = "https://example.com/"
    url = base + "a" * (MAX_URL_LENGTH - len(base))
    assert validate_callback_url(url) == url


ALLOWED = ["hooks.example.com", "*.internal.example"]


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/x", "https://HOOKS.example.com./x", "http://a.b.internal.example/"],
)
def test_allow_list_accepts(url: str) -> None:
    assert validate_callback_url(url, allowed_hosts=ALLOWED) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/x",
        "https://hooks.example.com.evil.net/x",
        "https://internal.example/",  # the wildcard is for hosts below, not the domain itself
        "https://xinternal.example/",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_allow_list_refuses(url: str) -> None:
    with pytest.raises(InvalidCallbackUrlError) as caught:
        validate_callback_url(url, allowed_hosts=ALLOWED)
    assert caught.value.reason == "host"
