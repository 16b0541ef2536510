"""Debian's promtool accepts deploy/prometheus (config and rules) and the rule unit tests of
tests/monitoring/rules_test.yml pass: every alert firing and not firing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = Path("/usr/bin/promtool")
DEPLOY = REPO / "deploy" / "prometheus"
RULES = DEPLOY / "rules" / "qmtl.rules.yml"
RULES_TEST = Path(__file__).with_name("rules_test.yml")


def promtool(*args: str | Path) -> str:
    assert PROMTOOL.exists(), "Debian's prometheus package is required: apt-get install prometheus"
    done = subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    assert f"SUCCESS: {len(alerts())} rules found" in promtool("check", "rules", RULES)


def test_promtool_checks_the_scrape_config() -> None:
    assert "is valid prometheus config file syntax" in promtool(
        "check", "config", DEPLOY / "prometheus.yml"
    )


def test_the_rule_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", RULES_TEST)


def test_every_alert_has_a_test_and_a_runbook_anchor_named_after_it() -> None:
    cases = [
        case
        for group in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for case in group["alert_rule_test"]
    ]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    for rule in alerts():
        name = str(rule["alert"])
        assert name in firing, f"{name}: no test where it fires"
        assert name in quiet, f"{name}: no test where it stays quiet"
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert {"summary", "description", "runbook_url"} <= set(annotations), name
        assert annotations["runbook_url"] == f"docs/operations/alerts.md#{name.lower()}"
