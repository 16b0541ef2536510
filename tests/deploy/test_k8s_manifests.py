"""deploy/k8s passes the strict validator (deploy/k8s/validate: kustomize's krusty renders every
kustomization, each object is decoded into its k8s.io/api type refusing unknown fields and wrong
types, then semantic rules), and the validator refuses a broken copy naming file and field.
The rendered objects are then held to what the services really read: every QMTL_* variable is
a setting of the command the container runs, secrets come only from Secrets, the migration Job
and the DAG Manager name the same Neo4j, and the scrape annotations match deploy/prometheus."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from qmtl.cli import dagmanager, gateway

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
VALIDATOR = REPO / ".tools" / "bin" / "k8s-validate"
OVERLAYS = ["base", "overlays/production"]
MIGRATE_OF = {"base": "migrate", "overlays/production": "overlays/production/migrate"}
# Not marked secret by the CLI, but its URL carries the Redis password.
SECRET_BY_CONTENT = {"QMTL_REDIS_URL"}


@pytest.fixture(scope="module")
def validator() -> Path:
    # Built once into .tools/bin (rebuilt only when its Go sources change); a cold Go cache
    # fetches the pinned modules from the Go module proxy first.
    done = subprocess.run(
        ["bash", str(K8S / "validate" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return VALIDATOR


def run(validator: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(validator), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def rendered(validator: Path, directory: str) -> list[dict[str, Any]]:
    done = run(validator, "-print", directory, K8S)
    assert done.returncode == 0, done.stderr
    objects: list[dict[str, Any]] = [entry["object"] for entry in json.loads(done.stdout)]
    return objects


def test_the_manifests_pass_strict_validation(validator: Path) -> None:
    done = run(validator, K8S)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    summary = done.stdout
    assert re.search(r"files: \d+ documents in \d+ files decoded strictly", summary)
    production = next(line for line in summary.splitlines() if "overlays/production:" in line)
    for kinds in ("2 Deployment", "5 Service", "2 PodDisruptionBudget", "2 NetworkPolicy"):
        assert kinds in production
    assert "1 Ingress" in production
    assert "1 Job" in next(ln for ln in summary.splitlines() if "production/migrate:" in ln)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    root = tmp_path / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("validate"))
    return root


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {relative}"
    path.write_text(text.replace(old, new))


BROKEN = [
    pytest.param(
        "base/gateway.yaml",
        "          imagePullPolicy: IfNotPresent\n",
        "          imagePullPolcy: IfNotPresent\n",
        "base/gateway.yaml: Deployment/qmtl-gateway: "
        "spec.template.spec.containers[0].imagePullPolcy: unknown field",
        id="unknown-field",
    ),
    pytest.param(
        "base/dagmanager.yaml",
        "  replicas: 2\n",
        "  replicas: two\n",
        "base/dagmanager.yaml: Deployment/qmtl-dagmanager: spec.replicas: wrong type",
        id="wrong-type",
    ),
    pytest.param(
        "overlays/production/ingress.yaml",
        "    - host: qmtl.example.com\n",
        "    - hostname: qmtl.example.com\n",
        "overlays/production/ingress.yaml: Ingress/qmtl-gateway: spec.rules[0].hostname: "
        "unknown field",
        id="unknown-field-in-overlay",
    ),
    pytest.param(
        "base/dagmanager-services.yaml",
        "      targetPort: grpc\n",
        "      targetPort: grpcc\n",
        "base/dagmanager-services.yaml: Service/qmtl-dagmanager-grpc: "
        'spec.ports[0].targetPort: "grpcc" is not a container port of Deployment/qmtl-dagmanager',
        id="service-target-port-missing",
    ),
    pytest.param(
        "overlays/production/ingress.yaml",
        "                name: qmtl-gateway\n"
        "                port:\n"
        "                  name: public\n",
        "                name: qmtl-gateway-internal\n                port:\n"
        "                  name: internal\n",
        "overlays/production/ingress.yaml: Ingress/qmtl-gateway: "
        'spec.rules[0].http.paths[0].backend.service.port: routes to container port "internal"',
        id="ingress-to-internal-listener",
    ),
    pytest.param(
        "migrate/job.yaml",
        "  parallelism: 1\n",
        "  parallelism: 2\n",
        "migrate/job.yaml: Job/qmtl-migrate: spec.parallelism: is 2",
        id="migration-job-scaled",
    ),
    pytest.param(
        "base/gateway.yaml",
        "              path: /health\n",
        "              path: /healthz\n",
        "base/gateway.yaml: Deployment/qmtl-gateway: "
        'spec.template.spec.containers[0].livenessProbe.httpGet.path: is "/healthz"',
        id="liveness-path",
    ),
    pytest.param(
        "base/gateway.yaml",
        "            - name: internal\n              containerPort: 8081\n",
        "            - containerPort: 8081\n",
        "base/gateway.yaml: Deployment/qmtl-gateway: "
        "spec.template.spec.containers[0].ports[1].name: every container port must be named",
        id="unnamed-port",
    ),
    pytest.param(
        "base/dagmanager.yaml",
        '        prometheus.io/port: "8091"\n',
        '        prometheus.io/port: "8090"\n',
        "base/dagmanager.yaml: Deployment/qmtl-dagmanager: "
        "spec.template.metadata.annotations[prometheus.io/port]: is 8090",
        id="scrape-port-not-internal",
    ),
    pytest.param(
        "base/gateway.yaml",
        "              memory: 512Mi\n",
        "",
        "base/gateway.yaml: Deployment/qmtl-gateway: "
        "spec.template.spec.containers[0].resources.limits.memory: must be set",
        id="memory-limit-missing",
    ),
    pytest.param(
        "base/dagmanager.yaml",
        "              memory: 1Gi\n",
        "              memory: lots\n",
        "base/dagmanager.yaml: Deployment/qmtl-dagmanager: "
        "spec.template.spec.containers[0].resources.limits.memory: quantities must match",
        id="not-a-quantity",
    ),
]


@pytest.mark.parametrize(("relative", "old", "new", "expected"), BROKEN)
def test_the_validator_refuses_a_broken_copy_naming_file_and_field(
    validator: Path, scratch: Path, relative: str, old: str, new: str, expected: str
) -> None:
    assert run(validator, scratch).returncode == 0, "the unbroken copy must pass"
    edit(scratch, relative, old, new)
    done = run(validator, scratch)
    assert done.returncode == 1, done.stdout + done.stderr
    assert expected in done.stderr, done.stderr
    assert re.search(r"k8s-validate: \d+ problem\(s\)", done.stderr)


def test_the_validator_refuses_an_unknown_kind(validator: Path, scratch: Path) -> None:
    (scratch / "base" / "extra.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deploymnet\nmetadata:\n  name: x\n"
    )
    done = run(validator, scratch)
    assert done.returncode == 1
    assert 'base/extra.yaml: document 1: apiVersion "apps/v1" kind "Deploymnet"' in done.stderr


def containers(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                yield f"{obj['kind']}/{obj['metadata']['name']}", container


def subcommand(container: dict[str, Any]) -> str:
    """The `qmtl` subcommand a container runs: its command, else its image's entrypoint."""
    command = container.get("command")
    if command:
        assert command[0] == "qmtl", command
        return str(command[1])
    name = str(container["image"]).rsplit("/", 1)[-1].split(":", 1)[0]
    return name.removeprefix("qmtl-")


def settings_of(command: str) -> tuple[set[str], set[str]]:
    """(every environment variable `qmtl <command>` reads, the secret ones)."""
    if command in ("gateway", "dagmanager"):
        options = (gateway if command == "gateway" else dagmanager).options()
        return {o.env for o in options}, {o.env for o in options if o.secret} | SECRET_BY_CONTENT
    assert command == "migrate", command
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "qmtl"), "migrate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    names = set(re.findall(r"QMTL_[A-Z0-9_]+", done.stdout))
    assert names, done.stdout
    return names, {"QMTL_NEO4J_PASSWORD"}


def config_maps(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_is_real_and_every_secret_comes_from_a_secret(
    validator: Path, overlay: str
) -> None:
    objects = rendered(validator, overlay) + rendered(validator, MIGRATE_OF[overlay])
    maps = config_maps(objects)
    checked = 0
    for owner, container in containers(objects):
        known, secret = settings_of(subcommand(container))
        for ref in container.get("envFrom", []):
            assert "configMapRef" in ref, f"{owner}: secrets are referenced key by key, not envFrom"
            for key, value in maps[ref["configMapRef"]["name"]].items():
                assert key in known, (
                    f"{owner}: {key} is not a setting of qmtl {subcommand(container)}"
                )
                assert key not in secret, f"{owner}: {key} is a secret but sits in a ConfigMap"
                assert value != "", f"{owner}: {key} is empty (the CLI reads that as unset)"
                checked += 1
        for env in container.get("env", []):
            assert env["name"] in known, f"{owner}: {env['name']} is not a setting"
            source = env.get("valueFrom", {})
            if env["name"] in secret:
                assert "secretKeyRef" in source, f"{owner}: {env['name']} must come from a Secret"
                assert source["secretKeyRef"]["name"] == "qmtl-secrets"
            checked += 1
        assert secret & required_secrets(subcommand(container)) <= {
            e["name"] for e in container.get("env", [])
        }, f"{owner}: a required secret is not passed"
    assert checked >= 30


def required_secrets(command: str) -> set[str]:
    """What the production profile with the real backend cannot start without."""
    return {
        "gateway": {"QMTL_TOKEN_SECRET", "QMTL_REDIS_URL"},
        "dagmanager": {"QMTL_TOKEN_SECRET", "QMTL_NEO4J_PASSWORD"},
        "migrate": {"QMTL_NEO4J_PASSWORD"},
    }[command]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migration_job_migrates_the_graph_the_dag_manager_uses(
    validator: Path, overlay: str
) -> None:
    service = config_maps(rendered(validator, overlay))
    migrate = config_maps(rendered(validator, MIGRATE_OF[overlay]))
    (dag,) = [data for name, data in service.items() if name.startswith("qmtl-dagmanager-")]
    (job,) = migrate.values()
    for key in ("QMTL_NEO4J_URI", "QMTL_NEO4J_USER"):
        assert job[key] == dag[key], key
    assert job.get("QMTL_GRAPH_PREFIX", "") == dag.get("QMTL_GRAPH_PREFIX", "")


def test_the_production_overlay_is_production(validator: Path) -> None:
    objects = rendered(validator, "overlays/production")
    common = next(d for n, d in config_maps(objects).items() if n.startswith("qmtl-common-"))
    assert common["QMTL_PROFILE"] == "production"
    dag = next(d for n, d in config_maps(objects).items() if n.startswith("qmtl-dagmanager-"))
    assert dag["QMTL_DAGMANAGER_BACKEND"] == "real"
    assert int(dag["QMTL_KAFKA_REPLICATION"]) == 3
    for owner, container in containers(objects):
        assert not container["image"].startswith("localhost/"), owner
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    assert {d["metadata"]["name"]: d["spec"]["replicas"] for d in deployments} == {
        "qmtl-gateway": 2,
        "qmtl-dagmanager": 2,
    }
    assert all(
        o["metadata"].get("namespace") == "qmtl" for o in objects if o["kind"] != "Namespace"
    )


def test_the_base_images_carry_the_package_version(validator: Path) -> None:
    version = re.search(
        r'^version = "([^"]+)"',
        (REPO / "services" / "gateway" / "pyproject.toml").read_text(),
        re.M,
    )
    assert version
    images = {c["image"] for _, c in containers(rendered(validator, "base"))}
    assert images == {
        f"localhost/qmtl-gateway:{version[1]}",
        f"localhost/qmtl-dagmanager:{version[1]}",
    }


def test_the_scrape_annotations_match_deploy_prometheus(validator: Path) -> None:
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for obj in rendered(validator, "overlays/production"):
        if obj["kind"] != "Deployment":
            continue
        template = obj["spec"]["template"]
        # docs/operations/deploy.md relabels app.kubernetes.io/name into `job`: the rules
        # select job=~"qmtl-.*".
        job = jobs[template["metadata"]["labels"]["app.kubernetes.io/name"]]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/path"] == job["metrics_path"]
        (target,) = job["static_configs"][0]["targets"]
        assert annotations["prometheus.io/port"] == target.rsplit(":", 1)[1]
