"""A `qmtl dagmanager` / `qmtl gateway` process started by a test, as an operator would start it.

The process prints `qmtl <cmd>: listening public=http://H:P internal=http://H:P [grpc=H:P]`
once its listeners accept, and `qmtl <cmd>: ready in N ms ... crash_detected=...` once its
boot has finished; the test waits for those lines rather than for a time. stderr (the logs)
goes to a file, shown when something fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QMTL = REPO / ".venv" / "bin" / "qmtl"
STARTUP_S = 30.0
_URL = re.compile(r"(public|internal|grpc)=(?:http://)?([0-9.]+):(\d+)")


class ServiceProcess:
    def __init__(self, command: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.command = command
        self.argv = [str(QMTL), command, *args]
        self.env = {**os.environ, **(env or {})}
        self.ports: dict[str, int] = {}
        self.ready_line = ""
        self.spawned_at = 0.0
        self.ready_after_s = 0.0
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix=f"qmtl-{command}-", suffix=".log", delete=False
        )
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def proc(self) -> asyncio.subprocess.Process:
        assert self._proc is not None, "not started"
        return self._proc

    def url(self, listener: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[listener]}{path}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.ports['grpc']}"

    def logs(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def check_alive(self) -> None:
        if self._proc is not None and self._proc.returncode is not None:
            raise AssertionError(
                f"qmtl {self.command} exited with {self._proc.returncode}:\n{self.logs()}"
            )

    async def start(self) -> None:
        """Spawns the process and returns once its listeners accept."""
        self.spawned_at = time.monotonic()
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            env=self.env,
            cwd=REPO,
        )
        line = await self._line("listening")
        self.ports = {name: int(port) for name, _, port in _URL.findall(line)}

    async def wait_ready(self, within: float = STARTUP_S) -> str:
        """Returns the `ready` line once the boot has finished."""
        self.ready_line = await self._line("ready", within=within)
        self.ready_after_s = time.monotonic() - self.spawned_at
        return self.ready_line

    @property
    def crash_detected(self) -> bool:
        match = re.search(r"crash_detected=(true|false)", self.ready_line)
        assert match, self.ready_line
        return match.group(1) == "true"

    async def _line(self, word: str, within: float = STARTUP_S) -> str:
        assert self.proc.stdout is not None
        prefix = f"qmtl {self.command}: {word}"
        try:
            async with asyncio.timeout(within):
                while True:
                    raw = await self.proc.stdout.readline()
                    if not raw:
                        await self.proc.wait()
                        self.check_alive()
                    line = raw.decode().strip()
                    if line.startswith(prefix):
                        return line
        except TimeoutError:
            raise AssertionError(
                f"qmtl {self.command} printed no `{word}` line in {within}s:\n{self.logs()}"
            ) from None

    async def stop(self, sig: signal.Signals = signal.SIGTERM, within: float = 30.0) -> int:
        """Sends `sig` and returns the exit status."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        async with asyncio.timeout(within):
            return await self.proc.wait()

    async def close(self) -> None:
        """Test teardown: nothing left running, the log file removed."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        self._log.close()
        os.unlink(self._log.name)
