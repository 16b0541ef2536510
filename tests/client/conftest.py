"""Fixtures of the client tests: the scripted service, in process and on real sockets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client.support import Apps, Recorder, ServedApps, ServerThread, build_apps


@pytest.fixture
def apps() -> Iterator[Apps]:
    built = build_apps()
    yield built
    built.handler.release.set()


@pytest.fixture
def served(apps: Apps) -> Iterator[ServedApps]:
    public, internal = ServerThread(apps.public).start(), ServerThread(apps.internal).start()
    yield ServedApps(apps, public.url, internal.url)
    apps.handler.release.set()
    public.stop()
    internal.stop()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
