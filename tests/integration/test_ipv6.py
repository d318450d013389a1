"""IPv6: the shim on ``[::1]`` in front of the real Glance reached on ``[::1]`` (over TLS,
its certificate naming ``::1``), links that keep bracketed hosts bracketed, and ``[::]``
listening on both address families."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from yarl import URL

from shim.settings import Address, Settings
from tests.fakes.shim_server import local_settings, served_shim
from tests.shim_fixtures import TEST_PAGE_SIZE
from tests.stack.catalogue import Catalogue
from tests.stack.info import StackInfo
from tests.stack.tls import HttpsStack, Pki

pytestmark = pytest.mark.integration


def hrefs(doc: dict[str, Any], rel: str) -> list[str]:
    return [link["href"] for i in doc["images"] for link in i["links"] if link["rel"] == rel]


async def test_shim_on_ipv6_in_front_of_glance_on_ipv6(
    real_stack: StackInfo,
    https_stack: HttpsStack,
    pki: Pki,
    tokens: dict[str, str],
    catalogue: Catalogue,
) -> None:
    settings = Settings.from_sources(
        {
            "SHIM_LISTEN": "[::1]:0",
            "SHIM_METRICS_LISTEN": "[::1]:0",
            "SHIM_GLANCE_URL": https_stack.glance_url_v6,
            "SHIM_GLANCE_PAGE_SIZE": str(TEST_PAGE_SIZE),
            "SHIM_CA_FILE": str(pki.ca_file),
            "SHIM_CLIENT_CERT": str(pki.client.cert),
            "SHIM_CLIENT_KEY": str(pki.client.key),
            "SHIM_WORKERS": "1",
        }
    )
    assert settings.listen == Address("::1", 0)
    async with served_shim(settings) as shim, aiohttp.ClientSession() as client:
        port = shim.running.api_port
        base = f"http://[::1]:{port}"
        headers = {"X-Auth-Token": tokens["alice"]}
        url = f"{base}/v2.1/{real_stack.demo_a}/images/detail?limit=5"
        async with client.get(url, headers=headers) as answer:
            assert answer.status == 200, await answer.text()
            doc = json.loads(await answer.read())
        async with client.get(f"http://[::1]:{shim.running.metrics_port}/healthz") as health:
            assert health.status == 200
    assert [i["id"] for i in doc["images"]] == catalogue.listings["alice"][:5]
    image = catalogue.ids[catalogue.listed("alice")[0]]
    assert hrefs(doc, "self")[0] == f"{base}/v2.1/{real_stack.demo_a}/images/{image}"
    assert hrefs(doc, "alternate")[0] == f"{https_stack.glance_url_v6}/images/{image}"
    [next_link] = doc["images_links"]
    assert URL(next_link["href"]).host == "::1"
    assert next_link["href"].startswith(f"{base}/v2.1/{real_stack.demo_a}/images/detail?")


async def test_configured_ipv6_bases_stay_bracketed(
    real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    settings = Settings.from_sources(
        {
            "SHIM_GLANCE_URL": real_stack.glance_url,
            "SHIM_GLANCE_PUBLIC_URL": "http://[fd00::5]:9292",
            "SHIM_PUBLIC_URL": "https://[fd00::7]:8774",
            "SHIM_LISTEN": "127.0.0.1:0",
            "SHIM_METRICS_LISTEN": "127.0.0.1:0",
            "SHIM_WORKERS": "1",
        }
    )
    async with served_shim(settings) as shim:
        url = shim.url / "v2.1" / "images" / "detail" % {"limit": "1"}
        async with (
            aiohttp.ClientSession() as client,
            client.get(url, headers={"X-Auth-Token": tokens["alice"]}) as answer,
        ):
            doc = json.loads(await answer.read())
    image = catalogue.listings["alice"][0]
    assert hrefs(doc, "self") == [f"https://[fd00::7]:8774/v2.1/images/{image}"]
    assert hrefs(doc, "alternate") == [f"http://[fd00::5]:9292/images/{image}"]
    assert doc["images_links"][0]["href"].startswith("https://[fd00::7]:8774/v2.1/images/detail?")


async def test_listening_on_all_ipv6_addresses_takes_ipv4_too(real_stack: StackInfo) -> None:
    settings = local_settings(listen=Address("::", 0), glance_url=URL(real_stack.glance_url))
    async with served_shim(settings) as shim, aiohttp.ClientSession() as client:
        port = shim.running.api_port
        for host in ("127.0.0.1", "[::1]"):
            async with client.get(f"http://{host}:{port}/v2.1") as answer:
                assert answer.status == 200
                links = (await answer.json())["version"]["links"]
            assert links[0]["href"] == f"http://{host}:{port}/v2.1/"
