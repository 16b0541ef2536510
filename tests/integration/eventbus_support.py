"""Parent-side helpers for the event-bus integration tests: a private Kafka broker a test may
stop and restart, and a consumer process it may SIGKILL."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.integration.workqueue_support import free_port

REPO = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO / "scripts" / "services" / "kafka.sh"
SHARED_KAFKA_LIB = REPO / ".services" / "kafka" / "lib"
CONSUMER_SCRIPT = Path(__file__).with_name("eventbus_consumer_process.py")


class PrivateKafka:
    """A Kafka broker of our own, started by scripts/services/kafka.sh on free ports with its
    own data directory (QMTL_SERVICES_DIR), so a test may stop and restart it without touching
    the shared one. It reuses the shared broker's jars (a symlink to .services/kafka/lib, which
    `make services-up` filled) instead of resolving them with Maven again."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.port = free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "QMTL_KAFKA_PORT": str(self.port),
            "QMTL_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "QMTL_SERVICES_DIR": str(base_dir),
        }
        service_dir = base_dir / "kafka"
        service_dir.mkdir(parents=True, exist_ok=True)
        if not SHARED_KAFKA_LIB.is_dir():
            raise AssertionError(
                f"{SHARED_KAFKA_LIB} is missing: run `make services-up` (or "
                "`scripts/services/kafka.sh start`) once to fetch the Kafka jars"
            )
        (service_dir / "lib").symlink_to(SHARED_KAFKA_LIB, target_is_directory=True)
        # A cluster id of our own (16 random bytes, base64url, as Kafka's random-uuid prints),
        # which spares kafka.sh one JVM start to generate it.
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        (service_dir / "cluster.id").write_text(cluster_id + "\n")

    def _script(self, action: str) -> None:
        done = subprocess.run(
            ["bash", str(KAFKA_SCRIPT), action],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0:
            log = self.base_dir / "kafka" / "server.log"
            tail = (
                "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                if log.exists()
                else ""
            )
            raise AssertionError(f"kafka.sh {action} failed:\n{done.stdout}\n{done.stderr}\n{tail}")

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")


@dataclass
class ConsumerProcess:
    """tests/integration/eventbus_consumer_process.py, run as its own Python process."""

    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"consumer exited early with {code}; its log:\n{self.log_tail()}")

    @classmethod
    def spawn(cls, log: Path, *args: str) -> ConsumerProcess:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, str(CONSUMER_SCRIPT), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        return cls(proc, log)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
