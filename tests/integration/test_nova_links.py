"""Every link in the real Nova's answers stays on the shim, in gateway mode.

The shim passes compute calls to the stack's Nova 34: once at Nova's defaults (links built
from the Host the shim sends, so naming Nova's own address) and once with
``enable_proxy_headers_parsing = True`` (links built from the ``X-Forwarded-*`` the shim
sends). Each runs with no ``SHIM_PUBLIC_URL`` (links take the client's scheme and host) and
with ``SHIM_PUBLIC_URL=https://compute.example.com`` (TLS ends in front of the shim). Each
answer is also compared with Nova's own: the same document once its links are moved.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from tests.integration.answers import hrefs
from tests.integration.conftest import MakeShim
from tests.stack.catalogue import Catalogue
from tests.stack.info import StackInfo
from tests.stack.rest import request

pytestmark = pytest.mark.integration

Client = TestClient[Any, Any]
PUBLIC = "https://compute.example.com"
FOREIGN = frozenset({"http://docs.openstack.org/"})


@dataclass(frozen=True, slots=True)
class Gateway:
    client: Client
    nova: str  # the Nova the shim passes to, as the shim is configured with it
    public: str  # what every link must start with

    async def fetch(
        self, method: str, path: str, token: str | None = None, **options: Any
    ) -> tuple[int, Any, bytes]:
        headers = dict(options.pop("headers", {}))
        if token is not None:
            headers["X-Auth-Token"] = token
        async with self.client.request(
            method, path, headers=headers, allow_redirects=False, **options
        ) as response:
            return response.status, response.headers, await response.read()


@pytest.fixture(
    params=[
        ("defaults", None),
        ("defaults", PUBLIC),
        ("proxy-headers", None),
        ("proxy-headers", PUBLIC),
    ],
    ids=["nova-defaults", "nova-defaults-public-url", "nova-proxy-headers", "proxy-headers-public"],
)
async def gateway(request: pytest.FixtureRequest, make_shim: MakeShim) -> Gateway:
    which, public = request.param
    nova = request.getfixturevalue("nova_url" if which == "defaults" else "nova_proxy_headers_url")
    client = await make_shim(nova_url=URL(nova), public_url=URL(public) if public else None)
    own = str(client.make_url("/")).rstrip("/")
    return Gateway(client, nova, public or own)


def moved(document: Any, old: str, new: str) -> Any:
    """*document* with every href on *old* moved to *new* (what the shim should answer)."""
    if isinstance(document, dict):
        return {
            key: new + value[len(old) :]
            if key == "href" and isinstance(value, str) and value.startswith(old + "/")
            else moved(value, old, new)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [moved(item, old, new) for item in document]
    return document


def assert_on_the_shim(document: object, public: str) -> list[str]:
    found = hrefs(document)
    assert found, document
    for href in found:
        assert href.startswith(public + "/") or href in FOREIGN, href
    return found


def direct(method: str, url: str, **options: Any) -> Awaitable[Any]:
    return asyncio.to_thread(request, method, url, **options)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),
        ("/v2", 200),
        ("/v2/", 200),
        ("/v2.1", 200),
        ("/v2.1/", 200),
        ("/v3/images", 300),
    ],
)
async def test_version_discovery_names_the_shim(
    gateway: Gateway, real_stack: StackInfo, path: str, status: int
) -> None:
    got, headers, body = await gateway.fetch("GET", path)
    assert got == status, body
    assert headers["Content-Length"] == str(len(body))
    document = json.loads(body)
    assert any(
        href.startswith(gateway.public + "/")
        for href in assert_on_the_shim(document, gateway.public)
    )
    # Nova's own answer, asked directly: the same document, its links on Nova.
    nova = await direct("GET", gateway.nova + path)
    assert nova.status == status
    assert document == moved(nova.json(), gateway.nova, gateway.public)


async def test_flavors_created_by_admin_link_to_the_shim(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    admin = tokens["admin"]
    name = f"links-{uuid.uuid4().hex[:8]}"
    body = {"flavor": {"name": name, "ram": 64, "vcpus": 1, "disk": 1}}
    status, _, created = await gateway.fetch("POST", "/v2.1/flavors", admin, json=body)
    assert status == 200, created
    flavor = json.loads(created)["flavor"]
    assert_on_the_shim(flavor, gateway.public)
    try:
        for path in ("/v2.1/flavors", "/v2.1/flavors/detail", f"/v2.1/flavors/{flavor['id']}"):
            status, headers, answer = await gateway.fetch("GET", path, tokens["alice"])
            assert status == 200
            assert headers["Content-Length"] == str(len(answer))
            document = json.loads(answer)
            assert_on_the_shim(document, gateway.public)
            nova = await direct("GET", gateway.nova + path, token=tokens["alice"])
            assert document == moved(nova.json(), gateway.nova, gateway.public)
        status, _, answer = await gateway.fetch("GET", "/v2.1/flavors?limit=1", tokens["alice"])
        [next_link] = json.loads(answer)["flavors_links"]
        assert next_link["href"].startswith(f"{gateway.public}/v2.1/flavors?")
        listed = json.loads((await gateway.fetch("GET", "/v2.1/flavors", tokens["alice"]))[2])
        [mine] = [f for f in listed["flavors"] if f["name"] == name]
        assert [link["href"] for link in mine["links"]] == [
            f"{gateway.public}/v2.1/flavors/{flavor['id']}",
            f"{gateway.public}/flavors/{flavor['id']}",
        ]
    finally:
        status, _, _ = await gateway.fetch("DELETE", f"/v2.1/flavors/{flavor['id']}", admin)
        assert status == 202


async def test_keypair_next_links_name_the_shim(gateway: Gateway, tokens: dict[str, str]) -> None:
    token = tokens["carol"]
    version = {"OpenStack-API-Version": "compute 2.35"}
    names = [f"links-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        for name in names:
            status, _, answer = await gateway.fetch(
                "POST",
                "/v2.1/os-keypairs",
                token,
                json={"keypair": {"name": name}},
                headers=version,
            )
            assert status == 201, answer  # 201 from 2.2 on
        status, _, answer = await gateway.fetch(
            "GET", "/v2.1/os-keypairs?limit=1", token, headers=version
        )
        assert status == 200
        document = json.loads(answer)
        [next_link] = document["keypairs_links"]
        assert next_link["href"].startswith(f"{gateway.public}/v2.1/os-keypairs?")
        nova = await direct(
            "GET", gateway.nova + "/v2.1/os-keypairs?limit=1", token=token, headers=version
        )
        assert document == moved(nova.json(), gateway.nova, gateway.public)
    finally:
        for name in names:
            await gateway.fetch("DELETE", f"/v2.1/os-keypairs/{name}", token)


async def test_location_of_a_new_server_names_the_shim(
    gateway: Gateway, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    """``POST /servers`` is the route that sets ``Location`` (the server's self link).

    Without computes the server stays in BUILD and cannot be deleted (Nova's delete needs
    placement), so the test lifts demo-a's instance quotas instead of counting on cleanup.
    """
    admin = tokens["admin"]
    unlimited = {"quota_set": {"instances": -1, "cores": -1, "ram": -1}}
    quota = await direct(
        "PUT",
        f"{gateway.nova}/v2.1/os-quota-sets/{real_stack.demo_a}",
        token=admin,
        json_body=unlimited,
    )
    assert quota.status == 200, quota.describe()
    body = {"flavor": {"name": f"links-{uuid.uuid4().hex[:8]}", "ram": 128, "vcpus": 1, "disk": 1}}
    flavor = await direct("POST", f"{gateway.nova}/v2.1/flavors", token=admin, json_body=body)
    assert flavor.status == 200, flavor.describe()
    flavor_url = f"{gateway.nova}/v2.1/flavors/{flavor.json()['flavor']['id']}"
    try:
        server = {
            "server": {
                "name": "links-location",
                "flavorRef": flavor.json()["flavor"]["id"],
                "imageRef": catalogue.ids["cirros-active"],
                "networks": "none",
            }
        }
        status, headers, answer = await gateway.fetch(
            "POST",
            "/v2.1/servers",
            tokens["alice"],
            json=server,
            headers={"OpenStack-API-Version": "compute 2.37"},
        )
        assert status == 202, answer
        created = json.loads(answer)["server"]
        assert headers["Location"] == f"{gateway.public}/v2.1/servers/{created['id']}"
        assert [link["href"] for link in created["links"]] == [
            f"{gateway.public}/v2.1/servers/{created['id']}",
            f"{gateway.public}/servers/{created['id']}",
        ]
        assert headers["Content-Length"] == str(len(answer))
    finally:
        await direct("DELETE", flavor_url, token=admin)


async def test_novas_own_401_passes_as_keystonemiddleware_sent_it(
    gateway: Gateway, real_stack: StackInfo
) -> None:
    version = {"OpenStack-API-Version": "compute 2.20"}
    status, headers, body = await gateway.fetch(
        "GET", "/v2.1/flavors", "not-a-token", headers=version
    )
    assert status == 401
    assert headers["WWW-Authenticate"] == f'Keystone uri="{real_stack.keystone_url}"'
    assert json.loads(body)["error"]["code"] == 401
    for name in ("OpenStack-API-Version", "X-OpenStack-Nova-API-Version", "Vary"):
        assert name not in headers
