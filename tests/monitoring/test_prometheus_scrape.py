"""A real Prometheus (Debian's /usr/bin/prometheus) scrapes `qmtl dagmanager` and `qmtl
gateway` on their internal listeners, with deploy/prometheus/prometheus.yml and its rules
(only the targets and the interval changed), and answers `up == 1` for both."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.workqueue_support import free_port
from tests.monitoring.test_promtool import alerts
from tests.polling import eventually
from tests.serve.service_process import REPO, ServiceProcess

PROMETHEUS = Path("/usr/bin/prometheus")
DEPLOY = REPO / "deploy" / "prometheus"
SECRET = "metrics-scrape-test-secret"
FREE = ("--public-port", "0", "--internal-port", "0")


@pytest.fixture
async def services() -> AsyncIterator[dict[str, ServiceProcess]]:
    env = {"QMTL_TOKEN_SECRET": SECRET}
    started = {
        "qmtl-dagmanager": ServiceProcess(
            "dagmanager", "--backend", "memory", *FREE, "--grpc-port", "0", env=env
        ),
        "qmtl-gateway": ServiceProcess("gateway", "--backend", "memory", *FREE, env=env),
    }
    try:
        for process in started.values():
            await process.start()
            await process.wait_ready()
        yield started
    finally:
        for process in started.values():
            await process.close()


def prometheus_config(targets: dict[str, str], tmp: Path) -> Path:
    """deploy/prometheus/prometheus.yml with `targets` per job and a 1 s interval."""
    assert PROMETHEUS.exists(), (
        "Debian's prometheus package is required: apt-get install prometheus"
    )
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(DEPLOY / "rules" / "qmtl.rules.yml")]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(targets)
    for name, target in targets.items():
        jobs[name]["static_configs"][0]["targets"] = [target]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def prometheus(services: dict[str, ServiceProcess], tmp_path: Path) -> AsyncIterator[str]:
    targets = {job: f"127.0.0.1:{p.ports['internal']}" for job, p in services.items()}
    config = prometheus_config(targets, tmp_path)
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        str(PROMETHEUS),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=log,
        stderr=log,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


async def query(client: httpx.AsyncClient, base: str, promql: str) -> list[dict[str, Any]]:
    try:
        answer = await client.get(f"{base}/api/v1/query", params={"query": promql})
    except httpx.TransportError:
        return []  # not listening yet
    if answer.status_code != 200:
        return []
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


async def test_prometheus_scrapes_both_services_and_loads_the_rules(
    services: dict[str, ServiceProcess], prometheus: str
) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        up: dict[str, str] = {}

        async def both_up() -> bool:
            found = await query(client, prometheus, "up")
            up.clear()
            up.update({r["metric"]["job"]: r["value"][1] for r in found})
            return up == {"qmtl-dagmanager": "1", "qmtl-gateway": "1"}

        await eventually(
            both_up,
            what=f"up == 1 for both services (last: {up})",
            within=60.0,
            watch=services.values(),
        )

        async def queue_depth_scraped() -> bool:
            found = await query(client, prometheus, 'qmtl_workqueue_jobs{state="ready"}')
            return [r["metric"].get("job") for r in found] == ["qmtl-gateway"]

        await eventually(queue_depth_scraped, what="the gateway's queue depth", within=30.0)
        booted = await query(client, prometheus, "qmtl_boot_duration_seconds")
        assert {r["metric"]["job"] for r in booted} == {"qmtl-dagmanager", "qmtl-gateway"}
        rules = (await client.get(f"{prometheus}/api/v1/rules")).json()["data"]["groups"]
        names = {rule["name"] for group in rules for rule in group["rules"]}
        assert names == {str(rule["alert"]) for rule in alerts()}
        assert all(rule["health"] != "err" for group in rules for rule in group["rules"]), rules
