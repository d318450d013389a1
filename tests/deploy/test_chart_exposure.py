"""What the chart exposes and what it tells the operator: metrics kept off the API's
Service, Ingress and HTTPRoute to the API only, replicas spread across nodes, the
`helm test` pod's checks (run for real against a shim on the real stack), and NOTES.txt."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from yarl import URL

from tests.deploy.kube import (
    CHART,
    Manifest,
    by_kind,
    helm,
    load_documents,
    one,
    template,
    validation_errors,
)
from tests.fakes.shim_server import local_settings, served_shim
from tests.shim_fixtures import MakeShim
from tests.stack.catalogue import Catalogue
from tests.stack.info import StackInfo

EXPOSED = CHART / "ci" / "exposed-values.yaml"
RELEASE_PREFIX = "rel-nova-image-shim"


def render(helm_bin: Path, *args: str, values: Path | None = None) -> list[Manifest]:
    return load_documents(template(helm_bin, values, "1.29.0", *args).stdout)


def services(docs: list[Manifest]) -> dict[str, Manifest]:
    return {doc["metadata"]["name"]: doc for doc in by_kind(docs, "Service")}


def test_metrics_have_a_clusterip_service_of_their_own(helm_bin: Path) -> None:
    docs = render(helm_bin, "--set", "service.type=LoadBalancer")
    found = services(docs)
    api, metrics = found[RELEASE_PREFIX], found[f"{RELEASE_PREFIX}-metrics"]
    assert api["spec"]["type"] == "LoadBalancer"
    assert [p["name"] for p in api["spec"]["ports"]] == ["api"]  # /metrics never public
    assert metrics["spec"]["type"] == "ClusterIP"
    assert [(p["name"], p["port"]) for p in metrics["spec"]["ports"]] == [("metrics", 9102)]


def test_ingress_and_httproute_reach_the_api_service_only(helm_bin: Path) -> None:
    docs = render(helm_bin, values=EXPOSED)
    assert not [e for doc in docs for e in validation_errors(doc, "1.29.0")]
    ingress = one(docs, "Ingress")
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "compute.example.com"
    [path] = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": RELEASE_PREFIX, "port": {"name": "api"}}
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"][0]["secretName"] == "compute-example-com-tls"
    route = one(docs, "HTTPRoute")
    assert route["spec"]["parentRefs"] == [
        {"name": "public-gateway", "namespace": "gateway-system", "sectionName": "https"}
    ]
    [route_rule] = route["spec"]["rules"]
    assert route_rule["backendRefs"] == [{"name": RELEASE_PREFIX, "port": 8774}]
    # Off by default.
    default = render(helm_bin)
    assert not by_kind(default, "Ingress")
    assert not by_kind(default, "HTTPRoute")


def test_an_httproute_without_a_gateway_is_refused_at_render_time(helm_bin: Path) -> None:
    result = template(helm_bin, None, "1.29.0", "--set", "httpRoute.enabled=true", check=False)
    assert result.returncode != 0
    assert "httpRoute.parentRefs: name the Gateway" in result.stderr


def test_httproute_schema_catches_mistakes(helm_bin: Path) -> None:
    route = one(render(helm_bin, values=EXPOSED), "HTTPRoute")
    bad_port = {
        **route,
        "spec": {**route["spec"], "rules": [{"backendRefs": [{"name": "x", "port": 0}]}]},
    }
    typo = {**route, "spec": {**route["spec"], "parentRef": route["spec"]["parentRefs"]}}
    assert validation_errors(bad_port, "1.29.0")
    assert validation_errors(typo, "1.29.0")


def test_replicas_spread_across_nodes_by_default(helm_bin: Path) -> None:
    pod = one(render(helm_bin), "Deployment")["spec"]["template"]["spec"]
    [constraint] = pod["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "kubernetes.io/hostname"
    assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"  # never blocks scheduling
    assert constraint["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "nova-image-shim",
        "app.kubernetes.io/instance": "rel",
    }
    none = one(render(helm_bin, "--set-json", "topologySpreadConstraints=[]"), "Deployment")
    assert "topologySpreadConstraints" not in none["spec"]["template"]["spec"]


# -- the helm test pod, its scripts run for real ---------------------------------------------


def pod_containers(docs: list[Manifest]) -> dict[str, Any]:
    return {c["name"]: c for c in one(docs, "Pod")["spec"]["containers"]}


async def run_script(container: Manifest, *args: str, env: dict[str, str]) -> tuple[int, str]:
    """The container's ``python -c SCRIPT`` run here with *args* instead of its own."""
    python, flag, script, *_ = container["command"]
    assert (python, flag) == ("python", "-c")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *args,
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_helm_test_lists_images_through_the_shim_with_the_secrets_token(
    helm_bin: Path,
    make_shim: MakeShim,
    real_stack: StackInfo,
    catalogue: Catalogue,
    tokens: dict[str, str],
) -> None:
    found = pod_containers(render(helm_bin, values=EXPOSED))
    images = found["list-images"]
    [token_env] = images["env"]
    assert token_env["valueFrom"]["secretKeyRef"] == {
        "name": "nova-image-shim-test-token",
        "key": "token",
    }
    url, cafile = images["command"][-2:]
    assert url == f"http://{RELEASE_PREFIX}.openstack.svc:8774/v2.1/images?limit=1"
    assert cafile == ""
    client = await make_shim(auth="keystone")
    local = str(client.make_url("/v2.1/images").with_query(limit="1"))
    code, out = await run_script(images, local, "", env={"OS_TOKEN": tokens["alice"]})
    assert (code, out.strip()) == (0, f"GET {local}: 200, 1 image(s)")
    # A wrong Glance URL fails the test (what /readyz can never show).
    broken = await make_shim(auth="keystone", glance_url=URL(real_stack.keystone_url))
    local = str(broken.make_url("/v2.1/images").with_query(limit="1"))
    code, out = await run_script(images, local, "", env={"OS_TOKEN": tokens["alice"]})
    assert code != 0
    assert f"GET {local}: " in out
    assert tokens["alice"] not in out


async def test_helm_test_without_a_token_says_what_it_did_not_check(
    helm_bin: Path, real_stack: StackInfo
) -> None:
    found = pod_containers(render(helm_bin))
    assert set(found) == {"readyz"}
    readyz = found["readyz"]
    url, secret = readyz["command"][-2:]
    assert url == f"http://{RELEASE_PREFIX}-metrics.openstack.svc:9102/readyz"
    assert secret == ""
    # A wrong Glance URL still passes this check: hence the message.
    async with served_shim(local_settings(glance_url=URL(real_stack.keystone_url))) as shim:
        code, out = await run_script(readyz, str(shim.metrics_url / "readyz"), secret, env={})
    assert code == 0
    assert "Not checked: Glance, Keystone and a token" in out
    assert "set tests.tokenSecret" in out


# -- NOTES.txt ---------------------------------------------------------------------------------


def notes(helm_bin: Path, tmp_path: Path, *args: str, values: Path | None = None) -> str:
    """NOTES.txt as `helm install` prints it (helm template leaves it out, and install
    needs a cluster): rendered through `tpl` in a scratch copy of the chart."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    shutil.copyfile(copy / "templates" / "NOTES.txt", copy / "notes.txt")
    (copy / "templates" / "zz-notes.yaml").write_text(
        'notes: |\n{{ tpl (.Files.Get "notes.txt") . | indent 2 }}\n'
    )
    extra = ["--values", str(values)] if values is not None else []
    result = helm(
        helm_bin,
        "template",
        "rel",
        str(copy),
        "--namespace",
        "openstack",
        "--show-only",
        "templates/zz-notes.yaml",
        *extra,
        *args,
    )
    text: str = load_documents(result.stdout)[0]["notes"]
    return text


def test_notes_warn_about_a_passthrough_gateway_and_show_the_endpoint_registration(
    helm_bin: Path, tmp_path: Path
) -> None:
    gateway = notes(helm_bin, tmp_path, "--set", "config.novaUrl=http://nova:8774")
    assert "WARNING: this is a gateway (config.novaUrl is set) with config.auth=passthrough" in (
        gateway
    )
    assert "openstack endpoint list --service compute" in gateway
    assert "openstack endpoint set --url 'https://<the shim's public address>/v2.1'" in gateway
    assert "(not set now: the\ntest cannot tell a wrong Glance or Keystone URL)" in gateway

    exposed = notes(helm_bin, tmp_path / "exposed", values=EXPOSED)
    assert "WARNING" not in exposed
    assert "openstack endpoint set --url 'https://compute.example.com/v2.1'" in exposed
    assert "answers to https://compute.example.com." in exposed
    assert "not set now" not in exposed

    standalone = notes(helm_bin, tmp_path / "standalone")
    assert "WARNING" not in standalone
    assert "register it as a separate endpoint" in standalone
