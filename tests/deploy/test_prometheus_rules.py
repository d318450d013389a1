"""The alert rules in deploy/prometheus: ``promtool check rules``, ``promtool test rules``,
and that the unit tests give every alert a case where it fires and one where it is quiet.

promtool is Debian's (``prometheus`` package), installed by `tests.stack.prometheus` when
missing. The same rules run in a real Prometheus in ``tests/integration/test_prometheus.py``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Final

import pytest

from tests.deploy.kube import DEPLOY, load_yaml
from tests.stack.prometheus import ensure_installed

RULES_DIR: Final = DEPLOY / "prometheus"
RULES: Final = RULES_DIR / "nova-image-shim.rules.yaml"
UNIT_TESTS: Final = sorted(RULES_DIR.glob("*.test.yaml"))
ALERTS: Final = {
    "NovaImageShimGlanceUnavailable",
    "NovaImageShimGlanceErrors",
    "NovaImageShimHighErrorRatio",
    "NovaImageShimHighLatency",
    "NovaImageShimKeystoneUnavailable",
    "NovaImageShimKeystoneRejectingTokens",
    "NovaImageShimWorkersRestarting",
    "NovaImageShimNoLegacyCallers",
}


@pytest.fixture(scope="session")
def promtool() -> Path:
    return ensure_installed().promtool


def run(promtool: Path, *args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def test_promtool_check_rules(promtool: Path) -> None:
    proc = run(promtool, "check", "rules", RULES.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules())} rules found" in proc.stdout


def test_promtool_unit_tests_pass(promtool: Path) -> None:
    assert [path.name for path in UNIT_TESTS] == [
        "nova-image-shim.retirement.test.yaml",
        "nova-image-shim.rules.test.yaml",
    ]
    proc = run(promtool, "test", "rules", *(path.name for path in UNIT_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(UNIT_TESTS), proc.stdout


def test_promtool_unit_tests_can_fail(promtool: Path, tmp_path: Path) -> None:
    """A changed threshold breaks the unit tests: they check values, not just syntax."""
    text = RULES.read_text("utf-8").replace("> 0.05\n", "> 0.5\n")
    assert text != RULES.read_text("utf-8")
    (tmp_path / RULES.name).write_text(text)
    unit_tests = RULES_DIR / "nova-image-shim.rules.test.yaml"
    (tmp_path / unit_tests.name).write_text(unit_tests.read_text("utf-8"))
    proc = run(promtool, "test", "rules", unit_tests.name, cwd=tmp_path)
    assert proc.returncode != 0
    assert "NovaImageShimHighErrorRatio" in proc.stdout + proc.stderr


def test_the_alerts_are_the_documented_ones() -> None:
    alerts = [rule for rule in rules() if "alert" in rule]
    assert {rule["alert"] for rule in alerts} == ALERTS
    readme = (DEPLOY.parent / "README.md").read_text("utf-8")
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]
        assert f"`{rule['alert']}`" in readme, f"{rule['alert']} is not in README's Monitoring"


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for group in load_yaml(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    assert firing == ALERTS, f"never seen firing: {ALERTS - firing}"
    assert quiet == ALERTS, f"never seen quiet: {ALERTS - quiet}"
