"""Helpers for the deployment tests: paths, helm, strict YAML, schema validation.

Validation is offline: core kinds go through kubernetes-validate's bundled strict schemas,
the ServiceMonitor, PrometheusRule and HTTPRoute custom resources through subsets of their
CRDs' own OpenAPI schemas (`CRD_SCHEMAS`, in ``schemas/``). A kind with neither is an error, never
a silent pass (the kubernetes-validate command line only warns about unknown kinds).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

from tests.stack.tls import Pki

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "nova-image-shim"
K8S_EXAMPLES = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
FETCH_HELM = REPO / "scripts" / "fetch-helm.sh"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion; native sidecars are on by
# default from 1.29) and the newest kubernetes-validate ships schemas for.
KUBE_VERSIONS = ("1.29.0", "1.37.0")

# The image's fixed user (deploy/Dockerfile USER) that the chart's securityContext names.
IMAGE_UID = 10001

Manifest = dict[str, Any]
# Custom resources validated against a subset of their CRD's schema: (apiVersion, kind) -> file.
CRD_SCHEMAS: dict[tuple[object, object], str] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute-gateway-v1.json",
}


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML keeps the last silently)."""


def _mapping_without_duplicates(
    loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def load_documents(text: str) -> list[Manifest]:
    """Every non-empty YAML document in *text*, refusing duplicate keys."""
    docs = [doc for doc in yaml.load_all(text, Loader=_StrictLoader) if doc is not None]
    for doc in docs:
        assert isinstance(doc, dict), f"a manifest must be a mapping, got {doc!r}"
    return docs


def load_yaml(path: Path) -> Any:
    # _StrictLoader is a SafeLoader: no arbitrary objects.
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506


@cache
def custom_validator(schema_file: str) -> jsonschema.protocols.Validator:
    """A strict validator from one of `SCHEMAS` (subsets of the CRDs' own schemas)."""
    schema = json.loads((SCHEMAS / schema_file).read_text("utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return validator


def validation_errors(doc: Manifest, kube_version: str) -> list[str]:
    """Why *doc* is not a valid object for *kube_version*, strictly; empty when it is."""
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    schema_file = CRD_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
    if schema_file is not None:
        return [
            f"{name}: {'.'.join(map(str, error.absolute_path))}: {error.message}"
            for error in custom_validator(schema_file).iter_errors(doc)
        ]
    try:
        kubernetes_validate.validate(doc, kube_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {'.'.join(map(str, error.path))}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{name}: no schema, so it cannot be validated: {error.message}"]
    return []


def helm(helm_bin: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(helm_bin), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_helm_env(helm_bin),
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def _helm_env(helm_bin: Path) -> dict[str, str]:
    # Keep helm away from the user's repositories, plugins and kube config.
    home = helm_bin.parent / "home"
    return {
        "PATH": "/usr/bin:/bin",
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": "/dev/null",
    }


def template(
    helm_bin: Path,
    values: Path | None,
    kube_version: str,
    *extra: str,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    args = ["template", "rel", str(CHART), "--namespace", "openstack"]
    args += ["--kube-version", kube_version]
    if values is not None:
        args += ["--values", str(values)]
    return helm(helm_bin, *args, *extra, check=check)


def by_kind(docs: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: Sequence[Manifest], kind: str) -> Manifest:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def containers(pod_spec: Manifest) -> Iterator[Manifest]:
    yield from pod_spec.get("initContainers", [])
    yield from pod_spec["containers"]


def env_of(container: Manifest) -> dict[str, Any]:
    return {item["name"]: item for item in container.get("env", [])}


def env_configmap(docs: Sequence[Manifest], container: Manifest) -> Manifest:
    """The one ConfigMap of *docs* that *container* takes variables from (``envFrom``)."""
    names = {ref["configMapRef"]["name"] for ref in container.get("envFrom", [])}
    (configmap,) = (cm for cm in by_kind(docs, "ConfigMap") if cm["metadata"]["name"] in names)
    return configmap


def load_example(directory: str) -> list[Manifest]:
    """Every manifest of one deploy/k8s example (a directory of YAML files)."""
    return [
        doc
        for path in sorted((K8S_EXAMPLES / directory).glob("*.yaml"))
        for doc in load_documents(path.read_text("utf-8"))
    ]


TLS_MOUNTS = "/etc/nova-image-shim/tls/"


def with_test_tls_files(env: dict[str, str], pki: Pki) -> dict[str, str]:
    """*env* with every path under the TLS mounts replaced by the test CA's file of that
    kind, so the shim's start-up checks can read what the pod would mount."""

    def stand_in(path: str) -> str:
        mount, name = path.removeprefix(TLS_MOUNTS).split("/")
        if mount == "ca":
            return str(pki.ca_file)
        pair = pki.client if mount == "client" else pki.server
        return str(pair.cert if name == "tls.crt" else pair.key)

    return {k: stand_in(v) if v.startswith(TLS_MOUNTS) else v for k, v in env.items()}
