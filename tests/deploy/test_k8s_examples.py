"""The plain manifests in deploy/k8s: strict schema validation, and the same hardening,
probes and labels as the Helm chart's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim import settings as shim_settings
from tests.deploy.kube import (
    K8S_EXAMPLES,
    KUBE_VERSIONS,
    Manifest,
    by_kind,
    containers,
    env_configmap,
    env_of,
    load_documents,
    load_example,
    one,
    template,
    validation_errors,
    with_test_tls_files,
)
from tests.stack.tls import Pki

FILES = sorted(K8S_EXAMPLES.rglob("*.yaml"))
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def shim_of(docs: list[Manifest]) -> tuple[Manifest, Manifest]:
    """The pod spec and the nova-image-shim container of the one Deployment in *docs*."""
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (shim,) = (c for c in containers(pod) if "/nova-image-shim:" in c["image"])
    return pod, shim


def shim_settings_of(docs: list[Manifest], shim: Manifest) -> dict[str, str]:
    data: dict[str, str] = env_configmap(docs, shim)["data"]
    return data


@pytest.fixture(scope="module")
def chart_shim(helm_bin: Path) -> Manifest:
    docs = load_documents(template(helm_bin, None, KUBE_VERSIONS[0]).stdout)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (shim,) = pod["containers"]
    return {"pod": pod, "container": shim, "labels": one(docs, "Deployment")["metadata"]["labels"]}


def test_examples_exist() -> None:
    assert {path.parent.name for path in FILES} == {"sidecar", "gateway"}


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(K8S_EXAMPLES)))
def test_manifest_passes_strict_schema_validation(path: Path, kube_version: str) -> None:
    docs = load_documents(path.read_text("utf-8"))
    assert docs
    errors = [error for doc in docs for error in validation_errors(doc, kube_version)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("directory", ["sidecar", "gateway"])
def test_shim_container_matches_the_chart(directory: str, chart_shim: Manifest) -> None:
    docs = load_example(directory)
    pod, shim = shim_of(docs)
    expected = chart_shim["container"]
    assert shim["securityContext"] == expected["securityContext"]
    for probe in PROBES:
        assert shim[probe] == expected[probe], probe
    assert env_of(shim)["PROMETHEUS_MULTIPROC_DIR"] == env_of(expected)["PROMETHEUS_MULTIPROC_DIR"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    # Same writable emptyDirs as the chart.
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in shim["volumeMounts"]}
    for path in ("/tmp", env_of(shim)["PROMETHEUS_MULTIPROC_DIR"]["value"]):
        assert "emptyDir" in volumes[mounts[path]], path
    assert shim["resources"]["requests"].keys() >= {"cpu", "memory"}
    assert {port["name"]: port["containerPort"] for port in shim["ports"]}["metrics"] == 9102


@pytest.mark.parametrize("directory", ["sidecar", "gateway"])
def test_shim_settings_are_accepted_by_the_shim(directory: str, pki: Pki) -> None:
    docs = load_example(directory)
    pod, shim = shim_of(docs)
    env = with_test_tls_files(shim_settings_of(docs, shim), pki)
    known = {spec.env for spec in shim_settings.SPECS}
    assert set(env) <= known, f"unknown settings: {set(env) - known}"
    parsed = shim_settings.Settings.from_sources(env, [])
    assert parsed.workers == int(env["SHIM_WORKERS"])
    assert parsed.metrics_listen is not None
    assert parsed.metrics_listen.host == "0.0.0.0"
    prestop = shim.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    sleep = int(prestop[1]) if prestop else 0
    assert pod["terminationGracePeriodSeconds"] > sleep + parsed.shutdown_timeout


def test_gateway_mounts_its_ca_bundle_and_listener_secret_whole() -> None:
    pod, shim = shim_of(load_example("gateway"))
    env = shim_settings_of(load_example("gateway"), shim)
    mounts = {m["mountPath"]: m for m in shim["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for setting in ("SHIM_CA_FILE", "SHIM_TLS_CERT", "SHIM_TLS_KEY"):
        directory = env[setting].rsplit("/", 1)[0]
        assert "subPath" not in mounts[directory]
        assert mounts[directory]["readOnly"] is True
        assert volumes[mounts[directory]["name"]].keys() & {"configMap", "secret"}
    assert volumes["tls-ca"]["configMap"] == {"name": "cloud-ca-bundle"}
    assert volumes["tls-listener"]["secret"] == {"secretName": "nova-image-shim-tls"}


def test_sidecar_is_native_and_reached_over_loopback() -> None:
    docs = load_example("sidecar")
    pod, shim = shim_of(docs)
    assert shim in pod["initContainers"]
    assert shim["restartPolicy"] == "Always"
    env = shim_settings_of(docs, shim)
    assert env["SHIM_LISTEN"] == "127.0.0.1:8774"
    assert [port["name"] for port in shim["ports"]] == ["metrics"]
    (app,) = pod["containers"]
    app_env = {
        key: value
        for ref in app["envFrom"]
        for cm in by_kind(docs, "ConfigMap")
        if cm["metadata"]["name"] == ref["configMapRef"]["name"]
        for key, value in cm["data"].items()
    }
    assert app_env["OS_COMPUTE_ENDPOINT_OVERRIDE"] == "http://127.0.0.1:8774/v2.1"


def test_gateway_uses_the_chart_labels(chart_shim: Manifest) -> None:
    docs = load_example("gateway")
    helm_only = {"helm.sh/chart", "app.kubernetes.io/managed-by"}
    chart_keys = set(chart_shim["labels"]) - helm_only
    deployment = one(docs, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
    for doc in docs:
        assert set(doc["metadata"]["labels"]) == chart_keys, doc["kind"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "nova-image-shim"
    assert set(deployment["spec"]["template"]["metadata"]["labels"]) == chart_keys
    for service in by_kind(docs, "Service"):
        assert service["spec"]["selector"] == selector
    assert one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
