"""The chart's monitoring extras and the NetworkPolicies: the PrometheusRule and the Grafana
dashboard ConfigMap carry exactly the files of deploy/prometheus and deploy/grafana, and
the NetworkPolicy admits the API only from the configured sources and /metrics only from
the monitoring namespace. Lint and strict validation of the ``monitoring`` scenario run
with every other scenario in ``test_chart.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import pytest

from tests.deploy.kube import (
    CHART,
    DEPLOY,
    KUBE_VERSIONS,
    Manifest,
    by_kind,
    containers,
    load_documents,
    load_example,
    load_yaml,
    one,
    template,
    validation_errors,
)

MONITORING: Final = CHART / "ci" / "monitoring-values.yaml"
RULES: Final = DEPLOY / "prometheus" / "nova-image-shim.rules.yaml"
DASHBOARD: Final = DEPLOY / "grafana" / "nova-image-shim.json"
CHART_COPIES: Final = {
    RULES: CHART / "files" / "nova-image-shim.rules.yaml",
    DASHBOARD: CHART / "files" / "nova-image-shim-dashboard.json",
}


@pytest.fixture(scope="module")
def monitoring(helm_bin: Path) -> list[Manifest]:
    return load_documents(template(helm_bin, MONITORING, KUBE_VERSIONS[0]).stdout)


@pytest.mark.parametrize("source", CHART_COPIES, ids=lambda p: p.name)
def test_chart_files_are_copies_of_the_deploy_files(source: Path) -> None:
    copy = CHART_COPIES[source]
    assert copy.read_bytes() == source.read_bytes(), f"cp {source} {copy}"


def test_prometheusrule_embeds_the_rules_file(monitoring: list[Manifest]) -> None:
    rule = one(monitoring, "PrometheusRule")
    assert rule["spec"]["groups"] == load_yaml(RULES)["groups"]
    names = [group["name"] for group in rule["spec"]["groups"]]
    assert len(names) == len(set(names))  # the CRD keys groups by name
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheusrule_validation_is_not_vacuous(monitoring: list[Manifest]) -> None:
    rule = one(monitoring, "PrometheusRule")
    group = rule["spec"]["groups"][1]
    alert = group["rules"][0]
    for bad_rule in (
        {**alert, "for": "5 minutes"},
        {**alert, "severity": "critical"},
        {key: value for key, value in alert.items() if key != "expr"},
        {**alert, "labels": {"severity": 3}},
    ):
        bad_group = {**group, "rules": [bad_rule]}
        bad = {**rule, "spec": {"groups": [bad_group]}}
        assert validation_errors(bad, KUBE_VERSIONS[0]), bad_rule


def test_dashboard_configmap_is_found_by_the_grafana_sidecar(monitoring: list[Manifest]) -> None:
    (configmap,) = (
        cm
        for cm in by_kind(monitoring, "ConfigMap")
        if cm["metadata"]["name"].endswith("-dashboard")
    )
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "OpenStack"}
    (text,) = configmap["data"].values()
    assert json.loads(text) == json.loads(DASHBOARD.read_text("utf-8"))


def test_dashboard_panels_are_well_formed() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text("utf-8"))
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "nova-image-shim"
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job"}
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(pos["y"] + dy, pos["x"] + dx) for dy in range(pos["h"]) for dx in range(pos["w"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"], panel["title"]
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], (panel["title"], target["expr"])
    titles = {panel["title"] for panel in panels}
    assert {"Legacy calls by client", "Legacy calls by project",
            "Last seen by client and project"} <= titles  # fmt: skip


def test_networkpolicy_admits_the_api_from_its_sources_and_metrics_from_monitoring(
    monitoring: list[Manifest],
) -> None:
    policy = one(monitoring, "NetworkPolicy")
    deployment = one(monitoring, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    api, metrics, helm_test = policy["spec"]["ingress"]
    values = load_yaml(MONITORING)
    assert api["from"] == values["networkPolicy"]["apiFrom"]
    assert api["ports"] == [{"port": "api", "protocol": "TCP"}]
    assert metrics["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    # The helm test pod may reach both ports, and is the only pod those labels select.
    test_pod = one(monitoring, "Pod")
    assert helm_test["from"][0]["podSelector"]["matchLabels"].items() <= (
        test_pod["metadata"]["labels"].items()
    )
    assert not helm_test["from"][0]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert [port["port"] for port in helm_test["ports"]] == ["api", "metrics"]
    assert_named_ports_exist(deployment, policy)


def test_networkpolicy_in_sidecar_style_admits_the_proxy_port(helm_bin: Path) -> None:
    docs = load_documents(
        template(
            helm_bin,
            CHART / "ci" / "sidecar-style-values.yaml",
            KUBE_VERSIONS[0],
            "--set", "networkPolicy.enabled=true",
            "--set-json", 'networkPolicy.apiFrom=[{"podSelector": {}}]',
            "--set-json", 'networkPolicy.metricsFrom=[{"ipBlock": {"cidr": "192.0.2.0/24"}}]',
        ).stdout
    )  # fmt: skip
    policy = one(docs, "NetworkPolicy")
    api, metrics, _ = policy["spec"]["ingress"]
    assert api["ports"] == [{"port": "proxy", "protocol": "TCP"}]  # never the shim's own
    assert metrics["from"][1] == {"ipBlock": {"cidr": "192.0.2.0/24"}}
    assert not validation_errors(policy, KUBE_VERSIONS[0])
    assert_named_ports_exist(one(docs, "Deployment"), policy)


def test_networkpolicy_needs_its_api_sources(helm_bin: Path) -> None:
    proc = template(helm_bin, None, KUBE_VERSIONS[0], "--set", "networkPolicy.enabled=true",
                    check=False)  # fmt: skip
    assert proc.returncode != 0
    assert "networkPolicy.apiFrom" in proc.stderr


def test_gateway_example_networkpolicy_matches_its_deployment() -> None:
    docs = load_example("gateway")
    policy = one(docs, "NetworkPolicy")
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    ports = [rule["ports"] for rule in policy["spec"]["ingress"]]
    assert ports == [[{"port": "api", "protocol": "TCP"}], [{"port": "metrics", "protocol": "TCP"}]]
    assert_named_ports_exist(deployment, policy)


def assert_named_ports_exist(deployment: Manifest, policy: Manifest) -> None:
    pod = deployment["spec"]["template"]["spec"]
    names = {port["name"] for c in containers(pod) for port in c.get("ports", [])}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port["port"] in names, f"no container port named {port['port']}"
