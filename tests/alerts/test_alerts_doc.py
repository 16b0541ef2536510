"""docs/operations/alerts.md has a runbook section for every alert the services raise and every
Prometheus rule, at the anchor their runbook links name (the lower-case alert name)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from qmtl.runtime.alerts import model

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations" / "alerts.md"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "qmtl.rules.yml"


def anchors() -> set[str]:
    return {m.lower() for m in re.findall(r"^### (\w+)$", DOC.read_text(), re.MULTILINE)}


def test_every_platform_alert_has_its_runbook_section() -> None:
    names = [
        model.BACKEND_DOWN,
        model.SERVICE_CRASHED,
        model.WORK_ITEM_DEAD_LETTERED,
        model.CALLBACK_DEAD_LETTERED,
        model.BOOT_CHECK_WARNING,
    ]
    assert {model.runbook_anchor(n) for n in names} <= anchors()


def test_every_prometheus_rule_has_its_runbook_section() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert rules
    for rule in rules:
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()
        assert anchor in anchors(), f"alerts.md lacks a section for {rule['alert']}"
