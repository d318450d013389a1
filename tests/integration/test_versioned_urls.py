"""URLs copied from a catalogue, as an operator writes them, in front of the real stack.

``SHIM_GLANCE_URL=…/v2`` used to answer every list 502 and every image 404, and
``SHIM_NOVA_URL=…/v2.1`` every passthrough call Nova's HTML 404. The settings now run with
the service roots and say so; the answers are the ones the roots give.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from shim.app import create_app
from shim.settings import load
from tests.stack.catalogue import Catalogue
from tests.stack.info import StackInfo

pytestmark = pytest.mark.integration


async def _get(client: TestClient[Any, Any], path: str, token: str) -> tuple[int, Any]:
    async with client.get(path, headers={"X-Auth-Token": token}) as response:
        return response.status, await response.json()


async def test_catalogue_style_urls_serve_images_and_passthrough(
    aiohttp_client: AiohttpClient,
    real_stack: StackInfo,
    tokens: dict[str, str],
    catalogue: Catalogue,
) -> None:
    loaded = load(
        {
            "SHIM_GLANCE_URL": f"{real_stack.glance_url}/v2",
            "SHIM_NOVA_URL": f"{real_stack.nova_url}/v2.1/",
            "SHIM_KEYSTONE_URL": f"{real_stack.keystone_url}/v3",
            "SHIM_AUTH": "keystone",
            "SHIM_METRICS_LISTEN": "off",
            "SHIM_WORKERS": "1",
        }
    )
    assert [variable for variable, _ in loaded.warnings] == [
        "SHIM_GLANCE_URL",
        "SHIM_NOVA_URL",
        "SHIM_KEYSTONE_URL",
    ]
    client = await aiohttp_client(create_app(loaded.settings))
    token = tokens["alice"]

    status, body = await _get(client, "/v2.1/images", token)
    assert status == 200
    assert [image["id"] for image in body["images"]] == catalogue.listings["alice"]
    first = catalogue.listings["alice"][0]
    status, body = await _get(client, f"/v2.1/images/{first}", token)
    assert (status, body["image"]["id"]) == (200, first)
    # Passthrough: the real Nova's own flavor list, not its 404 for /v2.1/v2.1/flavors.
    status, body = await _get(client, "/v2.1/flavors", token)
    assert status == 200
    assert isinstance(body["flavors"], list)
