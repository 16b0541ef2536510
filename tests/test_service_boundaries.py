"""Each service is a package of its own (NG-1): it imports the runtime, the generated
contracts, its own modules and third-party libraries its pyproject.toml lists, never another
service. Checked on the source, so a stray import fails here before any deployment does."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {
    "gateway": ROOT / "services" / "gateway",
    "dag_manager": ROOT / "services" / "dag_manager",
    "sdk": ROOT / "services" / "sdk",
}
# Generated contract packages (qmtl-contracts) and the runtime (qmtl-nextgen/qmtl-runtime-core).
ALLOWED_QMTL = (
    "qmtl.runtime",
    "qmtl.api.",
    "qmtl.common.",
    "qmtl.dag.",
    "qmtl.dagmanager.",
    "qmtl.gateway.",
    "qmtl.events.",
    "qmtl.work.",
    "qmtl.data.",
)
# Import names of distributions whose name differs from the module's.
IMPORT_NAMES = {"protobuf": "google", "googleapis-common-protos": "google", "grpcio": "grpc"}


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def declared_modules(service_dir: Path) -> set[str]:
    project = tomllib.loads((service_dir / "pyproject.toml").read_text(encoding="utf-8"))
    names = set()
    for requirement in project["project"]["dependencies"]:
        dist = requirement.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip()
        names.add(IMPORT_NAMES.get(dist, dist.replace("-", "_")))
    return names


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_imports_only_the_runtime_the_contracts_and_its_own_modules(
    service: str,
) -> None:
    service_dir = SERVICES[service]
    own = f"qmtl.services.{service}"
    third_party = declared_modules(service_dir) | {"google"}  # protobuf via qmtl-contracts
    sources = sorted((service_dir / "qmtl").rglob("*.py"))
    assert sources, f"no sources under {service_dir}"
    wrong = []
    for path in sources:
        for line, module in imports_of(path):
            top = module.split(".")[0]
            if module == own or module.startswith(own + "."):
                continue
            if top == "qmtl":
                if module.startswith(ALLOWED_QMTL):
                    continue
            elif top in sys.stdlib_module_names or top == "__future__" or top in third_party:
                continue
            wrong.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert not wrong, "imports outside the service's boundary:\n" + "\n".join(wrong)


def test_the_boundary_check_catches_an_import_of_another_service(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("from qmtl.services.dag_manager.diff import DiffService\n", encoding="utf-8")
    (module,) = [m for _, m in imports_of(source)]
    assert not module.startswith(ALLOWED_QMTL)
    assert not module.startswith("qmtl.services.gateway")
