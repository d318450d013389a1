"""The Helm chart: lint, render, strict schema validation, and the properties that matter.

Every scenario (default values and each ``ci/*-values.yaml``) is linted with
``helm lint --strict`` and rendered with ``helm template`` for the oldest and newest
supported Kubernetes; each rendered object must pass strict schema validation.
"""

from __future__ import annotations

import base64
import json
import re
import tomllib
from collections.abc import Collection
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from shim import settings as shim_settings
from tests.deploy.kube import (
    CHART,
    IMAGE_UID,
    KUBE_VERSIONS,
    REPO,
    SCHEMAS,
    TLS_MOUNTS,
    Manifest,
    by_kind,
    containers,
    custom_validator,
    env_configmap,
    env_of,
    helm,
    load_documents,
    load_yaml,
    one,
    template,
    validation_errors,
    with_test_tls_files,
)
from tests.stack.tls import Pki

CI_VALUES = {path.name.removesuffix("-values.yaml"): path for path in CHART.glob("ci/*.yaml")}
SCENARIOS: dict[str, Path | None] = {"default": None, **CI_VALUES}
BASE_KINDS = {"ServiceAccount", "ConfigMap", "Service", "Deployment", "Pod"}
SELECTOR_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/instance"}


def named(docs: list[Manifest], kind: str, name: str) -> Manifest:
    [doc] = [d for d in by_kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


def api_service(docs: list[Manifest]) -> Manifest:
    return named(docs, "Service", "rel-nova-image-shim")


class Render(Protocol):
    def __call__(self, scenario: str, kube_version: str = ...) -> list[Manifest]: ...


def test_ci_scenarios_are_the_documented_ones() -> None:
    assert set(CI_VALUES) == {"standalone", "sidecar-style", "hpa", "tls", "exposed", "monitoring"}
    assert all(path.name.endswith("-values.yaml") for path in CI_VALUES.values())


@pytest.fixture(scope="module")
def render(helm_bin: Path) -> Render:
    """Render a scenario for a Kubernetes version (each combination once per module)."""

    @cache
    def _render(scenario: str, kube_version: str) -> list[Manifest]:
        return load_documents(template(helm_bin, SCENARIOS[scenario], kube_version).stdout)

    def wrapper(scenario: str, kube_version: str = KUBE_VERSIONS[0]) -> list[Manifest]:
        return _render(scenario, kube_version)

    return wrapper


def shim_container(docs: list[Manifest]) -> Manifest:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = (c for c in containers(pod) if c["name"] == "shim")
    return container


def settings_configmap(docs: list[Manifest]) -> Manifest:
    """The ConfigMap of SHIM_* settings (a scenario may render a dashboard ConfigMap too)."""
    return env_configmap(docs, shim_container(docs))


def configmap_env(docs: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = settings_configmap(docs)["data"]
    return data


# -- lint and schema validation ----------------------------------------------------------


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(helm_bin: Path, scenario: str, kube_version: str) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", kube_version]
    if (values := SCENARIOS[scenario]) is not None:
        args += ["--values", str(values)]
    out = helm(helm_bin, *args).stdout
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out, out
    assert "[ERROR]" not in out, out


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rendered_objects_pass_strict_schema_validation(
    render: Render, scenario: str, kube_version: str
) -> None:
    docs = render(scenario, kube_version)
    assert docs, "helm template rendered nothing"
    errors = [error for doc in docs for error in validation_errors(doc, kube_version)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("scenario", "kinds"),
    [
        ("default", BASE_KINDS | {"PodDisruptionBudget"}),
        ("standalone", BASE_KINDS | {"PodDisruptionBudget"}),
        ("tls", BASE_KINDS | {"PodDisruptionBudget"}),
        ("exposed", BASE_KINDS | {"PodDisruptionBudget", "Ingress", "HTTPRoute"}),
        ("sidecar-style", BASE_KINDS),
        (
            "hpa",
            {
                "ServiceAccount",
                "ConfigMap",
                "Secret",
                "Service",
                "Deployment",
                "PodDisruptionBudget",
                "HorizontalPodAutoscaler",
                "ServiceMonitor",
                "Pod",
            },
        ),
        (
            "monitoring",
            [
                *BASE_KINDS,
                "ConfigMap",  # the Grafana dashboard
                "PodDisruptionBudget",
                "ServiceMonitor",
                "PrometheusRule",
                "NetworkPolicy",
            ],
        ),
    ],
)
def test_each_scenario_renders_the_expected_kinds(
    render: Render, scenario: str, kinds: Collection[str]
) -> None:
    docs = render(scenario)
    # One of each, but two Services: the API's and the metrics port's own.
    assert sorted(doc["kind"] for doc in docs) == sorted([*kinds, "Service"])
    assert {doc["metadata"]["namespace"] for doc in docs} == {"openstack"}


def test_strict_validation_is_not_vacuous(render: Render) -> None:
    """A misspelt field or a wrong type is caught, by both validators."""
    deployment = one(render("default"), "Deployment")
    typo = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    assert validation_errors(typo, KUBE_VERSIONS[0])
    wrong_type = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    assert validation_errors(wrong_type, KUBE_VERSIONS[0])
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate({"apiVersion": "example.org/v1", "kind": "Nope"}, "1.29.0")

    monitor = one(render("hpa"), "ServiceMonitor")
    endpoint = monitor["spec"]["endpoints"][0]
    for bad_endpoint in (
        {**endpoint, "interval": "15 seconds"},
        {**endpoint, "scheme": "ftp"},
        {**endpoint, "portName": "metrics"},
        {**endpoint, "metricRelabelings": [{"sourceLabels": ["bad-label"]}]},
    ):
        bad = {**monitor, "spec": {**monitor["spec"], "endpoints": [bad_endpoint]}}
        assert validation_errors(bad, KUBE_VERSIONS[0]), bad_endpoint
    no_selector = {**monitor, "spec": {"endpoints": [endpoint]}}
    assert validation_errors(no_selector, KUBE_VERSIONS[0])


def test_servicemonitor_schema_is_a_valid_schema() -> None:
    schema_file = "servicemonitor-monitoring-v1.json"
    schema = json.loads((SCHEMAS / schema_file).read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["spec"]["required"] == ["endpoints", "selector"]
    assert custom_validator(schema_file).is_valid(schema) is False  # a schema is no monitor


# -- properties ------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_selectors_use_only_name_and_instance(render: Render, scenario: str) -> None:
    docs = render(scenario)
    deployment = one(docs, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert set(selector) == SELECTOR_KEYS
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    for service in by_kind(docs, "Service"):
        assert service["spec"]["selector"] == selector
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        assert pdb["spec"]["selector"]["matchLabels"] == selector
    for monitor in by_kind(docs, "ServiceMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"] == selector
    for constraint in deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
        assert constraint["labelSelector"]["matchLabels"] == selector
    # The helm test pod must not be counted by the Service, the PDB or the HPA.
    test_pod = one(docs, "Pod")
    assert not selector.items() <= test_pod["metadata"]["labels"].items()
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_hpa_on_leaves_replicas_out_of_the_deployment(render: Render) -> None:
    docs = render("hpa")
    deployment = one(docs, "Deployment")
    assert "replicas" not in deployment["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}


@pytest.mark.parametrize("scenario", ["default", "standalone", "sidecar-style"])
def test_hpa_off_sets_replicas(render: Render, scenario: str) -> None:
    docs = render(scenario)
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    expected = load_yaml(CI_VALUES[scenario]).get("replicaCount", 2) if scenario != "default" else 2
    assert one(docs, "Deployment")["spec"]["replicas"] == expected


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_probes_use_the_named_metrics_port(render: Render, scenario: str) -> None:
    docs = render(scenario)
    container = shim_container(docs)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = configmap_env(docs)
    assert ports["metrics"] == int(env["SHIM_METRICS_LISTEN"].rpartition(":")[2])
    assert ports["api"] == int(env["SHIM_LISTEN"].rpartition(":")[2])
    paths = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in paths.items():
        get = container[probe]["httpGet"]
        assert get == {"path": path, "port": "metrics", "scheme": "HTTP"}, probe
    # The kubelet probes the pod IP: the metrics listener must not be loopback-only.
    assert env["SHIM_METRICS_LISTEN"].startswith("0.0.0.0:")
    metrics_ports = named(docs, "Service", "rel-nova-image-shim-metrics")["spec"]["ports"]
    assert [(p["name"], p["targetPort"]) for p in metrics_ports] == [("metrics", "metrics")]
    for monitor in by_kind(docs, "ServiceMonitor"):
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_security_context_is_hardened(render: Render, scenario: str) -> None:
    docs = render(scenario)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    pod_sc = pod["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] == IMAGE_UID
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in [shim_container(docs), one(docs, "Pod")["spec"]["containers"][0]]:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["runAsUser"] == IMAGE_UID
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["privileged"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["resources"]["requests"].keys() >= {"cpu", "memory"}


def test_image_uid_matches_the_dockerfile() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text("utf-8")
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users[-1].split(":")[0] == str(IMAGE_UID)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_writable_paths_are_emptydirs(render: Render, scenario: str) -> None:
    docs = render(scenario)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    container = shim_container(docs)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    multiproc = env_of(container)["PROMETHEUS_MULTIPROC_DIR"]["value"]
    for path in ("/tmp", multiproc):
        assert path in mounts, f"{path} is not mounted"
        assert "emptyDir" in volumes[mounts[path]], f"{path} is not an emptyDir"
        assert volumes[mounts[path]]["emptyDir"]["sizeLimit"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_grace_period_covers_prestop_and_drain(render: Render, scenario: str) -> None:
    docs = render(scenario)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    container = shim_container(docs)
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    shutdown = float(configmap_env(docs)["SHIM_SHUTDOWN_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + shutdown


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_configmap_is_valid_shim_settings(render: Render, scenario: str, pki: Pki) -> None:
    """The rendered SHIM_* variables are known settings and the shim accepts them (TLS
    files: the test CA's, in place of the mounted ones the pod would read)."""
    docs = render(scenario)
    env = dict(configmap_env(docs))
    env = with_test_tls_files(env, pki)
    known = {spec.env for spec in shim_settings.SPECS}
    assert set(env) <= known, f"unknown settings: {set(env) - known}"
    container = shim_container(docs)
    assert set(env_of(container)) <= {"PROMETHEUS_MULTIPROC_DIR", "SHIM_SERVICE_PASSWORD"}
    assert container["envFrom"] == [
        {"configMapRef": {"name": settings_configmap(docs)["metadata"]["name"]}}
    ]
    if "SHIM_SERVICE_PASSWORD" in env_of(container):
        env["SHIM_SERVICE_PASSWORD"] = "from-the-secret"
    parsed = shim_settings.Settings.from_sources(env, [])
    assert parsed.workers == int(env["SHIM_WORKERS"])
    assert parsed.listen.port == 8774
    assert parsed.metrics_listen is not None
    assert parsed.metrics_listen.port == 9102


def test_tls_scenario_mounts_whole_secrets_and_tests_over_https(render: Render) -> None:
    docs = render("tls")
    env = configmap_env(docs)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in shim_container(docs)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls-ca"] == {"name": "tls-ca", "configMap": {"name": "cloud-ca-bundle"}}
    assert volumes["tls-client"]["secret"] == {"secretName": "nova-image-shim-client-tls"}
    assert volumes["tls-listener"]["secret"] == {"secretName": "nova-image-shim-tls"}
    for name in ("tls-ca", "tls-client", "tls-listener"):
        # A subPath mount would never see a renewed Secret.
        assert mounts[name]["readOnly"] is True
        assert "subPath" not in mounts[name]
    files = {k: v for k, v in env.items() if v.startswith(TLS_MOUNTS)}
    assert files == {
        "SHIM_CA_FILE": "/etc/nova-image-shim/tls/ca/ca.crt",
        "SHIM_NOVA_CA_FILE": "/etc/nova-image-shim/tls/ca/ca.crt",
        "SHIM_CLIENT_CERT": "/etc/nova-image-shim/tls/client/tls.crt",
        "SHIM_CLIENT_KEY": "/etc/nova-image-shim/tls/client/tls.key",
        "SHIM_TLS_CERT": "/etc/nova-image-shim/tls/listener/tls.crt",
        "SHIM_TLS_KEY": "/etc/nova-image-shim/tls/listener/tls.key",
    }
    assert all(
        any(path.startswith(mounts[m]["mountPath"] + "/") for m in mounts)
        for path in files.values()
    )
    assert (env["SHIM_LISTEN"], env["SHIM_GLANCE_URL"]) == (
        "[::]:8774",
        "https://[fd00:10::5]:9292",
    )
    assert [(p["name"], p["appProtocol"]) for p in api_service(docs)["spec"]["ports"]] == [
        ("api", "https")
    ]
    metrics = named(docs, "Service", "rel-nova-image-shim-metrics")["spec"]["ports"]
    assert [(p["name"], p["appProtocol"]) for p in metrics] == [("metrics", "http")]
    test_pod = one(docs, "Pod")["spec"]
    https = next(c for c in test_pod["containers"] if c["name"] == "https")
    url, cafile = https["command"][-2:]
    assert url == "https://rel-nova-image-shim.openstack.svc:8774/"
    assert cafile == "/etc/nova-image-shim/tls/listener/ca.crt"
    assert test_pod["volumes"] == [
        {"name": "tls-listener", "secret": {"secretName": "nova-image-shim-tls"}}
    ]
    # Without TLS values nothing of it renders.
    plain = render("default")
    assert not any(v.startswith(TLS_MOUNTS) for v in configmap_env(plain).values())
    assert "SHIM_TLS_VERIFY" not in configmap_env(plain)
    assert [c["name"] for c in one(plain, "Pod")["spec"]["containers"]] == ["readyz"]


def test_sidecar_style_keeps_the_api_on_loopback(render: Render) -> None:
    docs = render("sidecar-style")
    env = configmap_env(docs)
    assert env["SHIM_AUTH"] == "trusted-headers"
    assert env["SHIM_LISTEN"] == "127.0.0.1:8774"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    proxy_ports = {
        port["name"]
        for container in containers(pod)
        if container["name"] != "shim"
        for port in container.get("ports", [])
    }
    [api] = api_service(docs)["spec"]["ports"]
    assert api["targetPort"] in proxy_ports, "API traffic must reach the proxy, not the shim"


def test_service_password_wiring(render: Render) -> None:
    # Existing Secret: referenced, not rendered.
    docs = render("standalone")
    assert not by_kind(docs, "Secret")
    ref = env_of(shim_container(docs))["SHIM_SERVICE_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "nova-image-shim-service-user", "key": "password"}
    # Password in values: a chart-managed Secret, and a checksum that rolls the pods.
    docs = render("hpa")
    secret = one(docs, "Secret")
    ref = env_of(shim_container(docs))["SHIM_SERVICE_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret["metadata"]["name"], "key": "password"}
    assert base64.b64decode(secret["data"]["password"]) == b"not-a-real-password"
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert {"checksum/config", "checksum/secret"} <= set(annotations)
    # Neither: no password variable and no Secret; never in the ConfigMap.
    docs = render("default")
    assert "SHIM_SERVICE_PASSWORD" not in env_of(shim_container(docs))
    assert not by_kind(docs, "Secret")
    for scenario in SCENARIOS:
        assert "SHIM_SERVICE_PASSWORD" not in configmap_env(render(scenario))


def test_image_defaults_to_app_version(render: Render) -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"]
    assert shim_container(render("default"))["image"] == f"nova-image-shim:{chart['appVersion']}"
    digest = load_yaml(CI_VALUES["hpa"])["image"]["digest"]
    assert shim_container(render("hpa"))["image"].endswith(f"@{digest}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "terminationGracePeriodSeconds=30"], "terminationGracePeriodSeconds"),
        (["--set", "config.shutdownTimeout=36"], "terminationGracePeriodSeconds"),
        (["--set", "config.auth=trusted-headers"], "listenHost"),
        (["--set", "config.auth=oauth"], "config.auth"),
        (["--set", "config.auth=keystone"], "config.keystoneUrl"),
        (["--set", "config.glanceUrl="], "config.glanceUrl"),
        (["--set", "config.serviceUsername=svc"], "serviceCredentials"),
        (["--set", "config.workers=0"], "config.workers"),
        (["--set", "config.extra.GLANCE_TIMEOUT=3"], "SHIM_"),
        (["--set", "config.extra.SHIM_LISTEN=0.0.0.0:1"], "SHIM_LISTEN"),
        (["--set", "config.extra.SHIM_SERVICE_PASSWORD=x"], "serviceCredentials"),
        (["--set", "podDisruptionBudget.minAvailable=1"], "not both"),
    ],
)
def test_render_refuses_unsafe_values(helm_bin: Path, args: list[str], message: str) -> None:
    proc = template(helm_bin, None, KUBE_VERSIONS[0], *args, check=False)
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr


def test_numbers_in_extra_settings_render_as_plain_integers(helm_bin: Path) -> None:
    proc = template(
        helm_bin,
        None,
        KUBE_VERSIONS[0],
        "--set",
        "config.extra.SHIM_GLANCE_MAX_BODY=33554432",
        "--set-json",
        "config.extra.SHIM_GLANCE_TIMEOUT=2.5",
        "--set",
        "listenHost=::",
    )
    env = configmap_env(load_documents(proc.stdout))
    assert env["SHIM_GLANCE_MAX_BODY"] == "33554432"
    assert env["SHIM_GLANCE_TIMEOUT"] == "2.5"
    assert env["SHIM_LISTEN"] == "[::]:8774"


# -- values.yaml -------------------------------------------------------------------------

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w.-]*):(?:\s|$)")


def test_every_values_key_is_commented() -> None:
    """Each key has a comment on its line or on the line (or comment block) above it."""
    lines = (CHART / "values.yaml").read_text("utf-8").splitlines()
    missing = []
    for number, line in enumerate(lines):
        match = _KEY.match(line)
        if not match or "#" in line.partition(":")[2]:
            continue
        above = lines[number - 1].strip() if number else ""
        if not above.startswith("#"):
            missing.append(f"values.yaml:{number + 1}: {match['key']}")
    assert not missing, "keys without a comment:\n" + "\n".join(missing)


def test_values_match_the_documented_defaults() -> None:
    values: dict[str, Any] = load_yaml(CHART / "values.yaml")
    assert values["image"]["tag"] == ""
    assert values["autoscaling"]["enabled"] is False
    assert values["serviceMonitor"]["enabled"] is False
    assert values["containerPorts"] == {"api": 8774, "metrics": 9102}
    # The image leaves the Prometheus directory to the shim (under /tmp); the chart names
    # its own emptyDir.
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text("utf-8")
    assert "PROMETHEUS_MULTIPROC_DIR=" not in dockerfile
    assert values["metricsVolume"]["mountPath"].startswith("/")
    shutdown_timeout = shim_settings.BY_ENV["SHIM_SHUTDOWN_TIMEOUT"]
    assert values["config"]["shutdownTimeout"] == shutdown_timeout.default
