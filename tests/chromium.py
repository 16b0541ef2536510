"""Headless Chromium as the tests run it: offline (only loopback reachable), a profile of the
test's own, no first-run or background traffic; one place for the flags."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

CHROMIUM_TIMEOUT_S = 120


def chromium_command(profile: Path, *extra: str) -> list[str]:
    """The command line for one headless run; `extra` adds the run's own flags and URL."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed (make setup installs Debian's chromium package)")
    return [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--proxy-server=http://127.0.0.1:9",  # nothing listens there: only loopback is reachable
        f"--user-data-dir={profile}",
        *extra,
    ]


async def run_chromium(profile: Path, *extra: str) -> str:
    """Runs headless Chromium to the end; its stdout (a `--dump-dom`, say). Fails the test with
    Chromium's stderr when it exits non-zero."""
    process = await asyncio.create_subprocess_exec(
        *chromium_command(profile, *extra),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), CHROMIUM_TIMEOUT_S)
    assert process.returncode == 0, err.decode(errors="replace")[-4000:]
    return out.decode()


async def dump_dom(url: str, profile: Path, budget_ms: int = 15000) -> str:
    """The DOM of `url` once `budget_ms` of virtual time ran its scripts to completion."""
    return await run_chromium(profile, f"--virtual-time-budget={budget_ms}", "--dump-dom", url)
