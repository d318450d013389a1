"""openstacksdk configured only with Keystone: the catalogue's ``compute`` endpoint is the shim.

The client authenticates with a password against the real Keystone, finds compute in its
catalogue (an endpoint registered for the test in a region of its own), discovers the
version from the shim's own documents (standalone mode), then lists, pages, shows and
finds images through the shim, which validates the token with Keystone and finds Glance
in the same catalogue. A second test pins the client to microversion 2.90, which only
works with ``SHIM_MICROVERSION_CAP=off``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import openstack
import openstack.exceptions
import pytest
from aiohttp import web
from openstack.connection import Connection
from pytest_aiohttp import AiohttpClient

from shim.app import create_app
from tests.clients import OPENSTACKSDK_WARNINGS, password_login
from tests.integration.catalog_entries import endpoints_in_new_region
from tests.integration.conftest import stack_settings
from tests.stack.catalogue import Catalogue
from tests.stack.info import StackInfo

# openstacksdk warns about its compute image calls (OpenStackDeprecationWarning) and, on
# every connect, about its own internals (a PendingDeprecationWarning); nothing else passes.
pytestmark = [pytest.mark.integration, *OPENSTACKSDK_WARNINGS]


@dataclass(frozen=True, slots=True)
class Exchange:
    method: str
    path_qs: str
    status: int
    version: str | None  # the OpenStack-API-Version the client sent


@dataclass(slots=True)
class Shim:
    region: str
    seen: list[Exchange] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [exchange.path_qs for exchange in self.seen]


@asynccontextmanager
async def shim_as_compute(
    aiohttp_client: AiohttpClient, stack: StackInfo, endpoint_path: str, **settings: Any
) -> AsyncIterator[Shim]:
    """A keystone-mode shim (Glance from the catalogue), listed as ``compute`` in Keystone."""
    app = create_app(stack_settings(stack, auth="keystone", glance_url=None, **settings))
    seen: list[Exchange] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        version = request.headers.get("OpenStack-API-Version")
        seen.append(Exchange(request.method, request.path_qs, response.status, version))

    app.on_response_prepare.append(record)
    client = await aiohttp_client(app)
    base = str(client.make_url("")).rstrip("/")
    urls = {"public": base + endpoint_path}
    async with endpoints_in_new_region(stack, "compute", urls, name="nova") as region:
        yield Shim(region=region, seen=seen)


def connect(stack: StackInfo, region: str, api_version: str | None = None) -> Connection:
    options: dict[str, Any] = {}
    if api_version is not None:
        options["compute_api_version"] = api_version
    return openstack.connect(**password_login(stack), region_name=region, **options)


@pytest.mark.parametrize(
    ("endpoint_path", "prefix"),
    [("", "/v2.1/images"), ("/v2.1", "/v2.1/images"), ("/v2.1/$(project_id)s", None)],
    ids=["unversioned", "v2.1", "v2.1-project"],
)
async def test_sdk_reaches_images_through_the_catalogues_compute_endpoint(
    aiohttp_client: AiohttpClient,
    real_stack: StackInfo,
    catalogue: Catalogue,
    endpoint_path: str,
    prefix: str | None,
) -> None:
    listed = catalogue.listings["alice"]
    snapshot = catalogue.ids["snapshot-of-vm"]
    async with shim_as_compute(aiohttp_client, real_stack, endpoint_path) as shim:

        def run() -> dict[str, Any]:
            conn = connect(real_stack, shim.region)
            try:
                return {
                    "detailed": [image.id for image in conn.compute.images()],
                    "paged": [image.id for image in conn.compute.images(limit=7)],
                    "basic": [image.id for image in conn.compute.images(details=False)],
                    "one": conn.compute.get_image(snapshot),
                    "found": conn.compute.find_image("cirros-active"),
                    "by_id": conn.compute.find_image(snapshot),
                    "absent": conn.compute.find_image("no-such-image"),
                }
            finally:
                conn.close()

        result = await asyncio.to_thread(run)

    assert result["detailed"] == listed
    assert result["paged"] == listed
    assert result["basic"] == listed
    one = result["one"]
    assert (one.id, one.name, one.status, one.min_ram) == (
        snapshot,
        "snapshot-of-vm",
        "ACTIVE",
        512,
    )
    assert result["found"].id == catalogue.ids["cirros-active"]
    assert result["by_id"].id == snapshot
    assert result["absent"] is None

    prefix = prefix or f"/v2.1/{real_stack.demo_a}/images"
    image_calls = [e for e in shim.seen if e.path_qs.startswith(prefix)]
    paging = [e for e in image_calls if "limit=7" in e.path_qs]
    assert len(paging) >= -(-len(listed) // 7)  # every page of 7 went through the shim
    assert all("marker=" in e.path_qs for e in paging[1:])
    assert all(e.status in (200, 404) for e in shim.seen)
    assert [e for e in shim.seen if e.status == 404] == [
        Exchange("GET", f"{prefix}/cirros-active", 404, None),
        Exchange("GET", f"{prefix}/no-such-image", 404, None),
    ]
    if endpoint_path == "":
        # Unversioned endpoint: the client read the shim's version list first.
        assert shim.seen[0] == Exchange("GET", "/", 200, None)


async def test_sdk_pinned_to_2_90_lists_images_with_the_cap_off(
    aiohttp_client: AiohttpClient, real_stack: StackInfo, catalogue: Catalogue
) -> None:
    listed = catalogue.listings["alice"]
    async with shim_as_compute(aiohttp_client, real_stack, "/v2.1", microversion_cap="off") as shim:

        def run() -> list[str]:
            conn = connect(real_stack, shim.region, api_version="2.90")
            try:
                ids = [image.id for image in conn.compute.images(limit=10)]
                found = conn.compute.find_image("cirros-active")
                assert found is not None
                return [*ids, found.id]
            finally:
                conn.close()

        ids = await asyncio.to_thread(run)
    assert ids == [*listed, catalogue.ids["cirros-active"]]
    assert shim.seen[0] == Exchange("GET", "/v2.1", 200, None)  # discovery: max 2.104
    image_calls = [e for e in shim.seen if e.path_qs.startswith("/v2.1/images")]
    assert image_calls
    assert {e.version for e in image_calls} == {"compute 2.90"}

    # With Nova's cap the shim advertises 2.35, and the client refuses to go on.
    async with shim_as_compute(aiohttp_client, real_stack, "/v2.1") as capped:

        def refused() -> None:
            conn = connect(real_stack, capped.region, api_version="2.90")
            try:
                list(conn.compute.images())
            finally:
                conn.close()

        with pytest.raises(openstack.exceptions.ConfigException, match=r"maximum of 2\.35"):
            await asyncio.to_thread(refused)
    assert not [e for e in capped.seen if "/images" in e.path_qs]
