"""Self-test of the stack's Nova compute API: Keystone auth, Glance behind it, links, and the
second Nova that parses proxy headers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.integration.answers import hrefs
from tests.stack.catalogue import Catalogue
from tests.stack.info import StackInfo
from tests.stack.rest import request

pytestmark = pytest.mark.integration

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "compute.example.com"}


@pytest.fixture
def flavor(real_stack: StackInfo, tokens: dict[str, str]) -> Iterator[dict[str, object]]:
    """A flavor created by admin through Nova's API, deleted afterwards."""
    body = {"flavor": {"name": f"f-{uuid.uuid4().hex[:8]}", "ram": 64, "vcpus": 1, "disk": 1}}
    resp = request("POST", f"{real_stack.nova_url}/v2.1/flavors", token=tokens["admin"],
                   json_body=body)  # fmt: skip
    assert resp.status == 200, resp.describe()
    created: dict[str, object] = resp.json()["flavor"]
    try:
        yield created
    finally:
        url = f"{real_stack.nova_url}/v2.1/flavors/{created['id']}"
        assert request("DELETE", url, token=tokens["admin"]).status == 202


def test_version_documents_name_novas_own_address(real_stack: StackInfo) -> None:
    root = request("GET", f"{real_stack.nova_url}/")
    assert root.status == 200
    versions = {v["id"]: v for v in root.json()["versions"]}
    assert versions["v2.1"]["version"] == "2.104"
    assert versions["v2.1"]["min_version"] == "2.1"
    assert versions["v2.0"]["version"] == ""
    v21 = request("GET", f"{real_stack.nova_url}/v2.1/")
    assert v21.status == 200
    assert set(hrefs(root.json()) + hrefs(v21.json())) >= {f"{real_stack.nova_url}/v2.1/"}
    for href in hrefs(root.json()) + hrefs(v21.json()):
        assert href.startswith(f"{real_stack.nova_url}/") or "docs.openstack.org" in href


def test_nova_requires_a_real_token(real_stack: StackInfo) -> None:
    url = f"{real_stack.nova_url}/v2.1/flavors"
    for token in (None, "not-a-token"):
        resp = request("GET", url, token=token)
        assert resp.status == 401
        assert resp.headers["www-authenticate"] == f'Keystone uri="{real_stack.keystone_url}"'
        assert "openstack-api-version" not in resp.headers
        assert "vary" not in resp.headers


def test_url_project_must_match_the_token(real_stack: StackInfo, tokens: dict[str, str]) -> None:
    resp = request("GET", f"{real_stack.nova_url}/v2.1/{real_stack.demo_b}/flavors",
                   token=tokens["alice"])  # fmt: skip
    assert resp.status == 400
    assert resp.json()["badRequest"]["message"] == (
        f"Malformed request URL: URL's project_id '{real_stack.demo_b}' doesn't match "
        f"Context's project_id '{real_stack.demo_a}'"
    )


def test_image_routes_read_the_stacks_glance_up_to_microversion_2_35(
    real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    # bob's list: alice's holds images whose broken block_device_mapping makes Nova fail.
    resp = request("GET", f"{real_stack.nova_url}/v2.1/images", token=tokens["bob"])
    assert resp.status == 200
    assert resp.headers["openstack-api-version"] == "compute 2.1"
    listed = [image["id"] for image in resp.json()["images"]]
    assert listed == catalogue.listings["bob"]
    image = resp.json()["images"][0]
    assert [link["href"] for link in image["links"]] == [
        f"{real_stack.nova_url}/v2.1/images/{image['id']}",
        f"{real_stack.nova_url}/images/{image['id']}",
        f"{real_stack.glance_url}/images/{image['id']}",
    ]
    # ...up to microversion 2.35
    headers = {"OpenStack-API-Version": "compute 2.36"}
    resp = request(
        "GET", f"{real_stack.nova_url}/v2.1/images", token=tokens["alice"], headers=headers
    )
    assert resp.status == 404
    assert resp.json() == {
        "itemNotFound": {"code": 404, "message": "The resource could not be found."}
    }


def test_admin_flavor_listed_with_links_to_nova(
    real_stack: StackInfo, tokens: dict[str, str], flavor: dict[str, object]
) -> None:
    resp = request("GET", f"{real_stack.nova_url}/v2.1/flavors", token=tokens["alice"])
    assert resp.status == 200
    [listed] = [f for f in resp.json()["flavors"] if f["id"] == flavor["id"]]
    assert [link["href"] for link in listed["links"]] == [
        f"{real_stack.nova_url}/v2.1/flavors/{flavor['id']}",
        f"{real_stack.nova_url}/flavors/{flavor['id']}",
    ]


def test_keypairs_and_servers_answer_without_computes(
    real_stack: StackInfo, tokens: dict[str, str]
) -> None:
    name = f"k-{uuid.uuid4().hex[:8]}"
    base = f"{real_stack.nova_url}/v2.1"
    created = request("POST", f"{base}/os-keypairs", token=tokens["bob"],
                      json_body={"keypair": {"name": name}})  # fmt: skip
    assert created.status == 200, created.describe()
    assert created.json()["keypair"]["private_key"].startswith("-----BEGIN")
    listed = request("GET", f"{base}/os-keypairs", token=tokens["bob"]).json()["keypairs"]
    assert [k["keypair"]["name"] for k in listed] == [name]
    assert request("DELETE", f"{base}/os-keypairs/{name}", token=tokens["bob"]).status == 202
    servers = request("GET", f"{base}/servers", token=tokens["bob"])
    assert (servers.status, servers.json()) == (200, {"servers": []})


def test_default_nova_ignores_proxy_headers(real_stack: StackInfo) -> None:
    resp = request("GET", f"{real_stack.nova_url}/v2.1/", headers=FORWARDED)
    assert hrefs(resp.json())[0] == f"{real_stack.nova_url}/v2.1/"


def test_second_nova_builds_links_from_proxy_headers(
    real_stack: StackInfo, nova_proxy_headers_url: str, tokens: dict[str, str],
    flavor: dict[str, object],
) -> None:  # fmt: skip
    assert nova_proxy_headers_url != real_stack.nova_url
    resp = request("GET", f"{nova_proxy_headers_url}/v2.1/", headers=FORWARDED)
    assert hrefs(resp.json())[0] == "https://compute.example.com/v2.1/"
    plain = request("GET", f"{nova_proxy_headers_url}/v2.1/")
    assert hrefs(plain.json())[0] == f"{nova_proxy_headers_url}/v2.1/"
    # Same databases as the stack's Nova: the flavor created there is listed here.
    url = f"{nova_proxy_headers_url}/v2.1/flavors/{flavor['id']}"
    shown = request("GET", url, token=tokens["alice"], headers=FORWARDED)
    assert shown.status == 200
    assert hrefs(shown.json())[0] == f"https://compute.example.com/v2.1/flavors/{flavor['id']}"
