"""The real Keystone and Glance over HTTPS, behind a CA the tests made (``https_stack``).

The shim verifies them through its settings in every auth mode, Glance found in the
token's catalogue included, presents its client certificate to a Glance that demands one,
and turns each way the TLS set-up can be wrong into the answer and the one log line an
operator can act on.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from shim.glance import UNAVAILABLE
from shim.keys import SESSION
from shim.keystone import IDENTITY_UNAVAILABLE
from tests.fakes.logs import captured_logs
from tests.fakes.net import acquired_connections
from tests.integration.catalog_entries import endpoints_in_new_region
from tests.integration.conftest import MakeShim
from tests.stack.catalogue import Catalogue
from tests.stack.info import StackInfo
from tests.stack.tls import HttpsStack, Pki

pytestmark = pytest.mark.integration

Client = TestClient[Any, Any]


async def fetch(client: Client, path: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
    async with client.get(path, headers=headers) as response:
        return response.status, response.headers, await response.read()


def trust(pki: Pki, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "ca_file": str(pki.ca_file),
        "client_cert": str(pki.client.cert),
        "client_key": str(pki.client.key),
    }
    values.update(overrides)
    return values


@pytest.mark.parametrize("mode", ["passthrough", "keystone", "trusted-headers", "catalogue"])
async def test_every_auth_mode_reads_through_the_https_stack(
    make_shim: MakeShim,
    real_stack: StackInfo,
    https_stack: HttpsStack,
    pki: Pki,
    tokens: dict[str, str],
    catalogue: Catalogue,
    mode: str,
) -> None:
    headers = {"X-Auth-Token": tokens["alice"]}
    settings = trust(
        pki,
        glance_url=URL(https_stack.glance_url),
        keystone_url=URL(https_stack.keystone_url),
        auth="keystone" if mode == "catalogue" else mode,
    )
    if mode == "trusted-headers":
        headers.update(
            {
                "X-Project-Id": real_stack.demo_a,
                "X-Roles": "member,reader",
                "X-Identity-Status": "Confirmed",
            }
        )
    image = catalogue.ids["snapshot-of-vm"]
    if mode == "catalogue":
        # Glance comes from the token's catalogue: an https endpoint, verified the same way.
        urls = {"public": f"{https_stack.glance_url}/v2/"}
        async with endpoints_in_new_region(real_stack, "image", urls) as region:
            settings.update(glance_url=None, catalog_region=region)
            client = await make_shim(**settings)
            await assert_reads(client, real_stack, catalogue, image, headers)
            return
    client = await make_shim(**settings)
    await assert_reads(client, real_stack, catalogue, image, headers)


async def assert_reads(
    client: Client, stack: StackInfo, catalogue: Catalogue, image: str, headers: dict[str, str]
) -> None:
    status, _, body = await fetch(client, f"/v2.1/{stack.demo_a}/images/detail", headers)
    assert status == 200, body
    assert [i["id"] for i in json.loads(body)["images"]] == catalogue.listings["alice"]
    status, _, body = await fetch(client, f"/v2.1/{stack.demo_a}/images/{image}/metadata", headers)
    assert status == 200, body
    metadata = json.loads(body)["metadata"]
    assert (metadata["image_type"], metadata["instance_uuid"]) == (
        "snapshot",
        catalogue.image("snapshot-of-vm")["instance_uuid"],
    )


async def test_per_upstream_ca_files_override_the_common_one(
    make_shim: MakeShim,
    real_stack: StackInfo,
    https_stack: HttpsStack,
    pki: Pki,
    tokens: dict[str, str],
    catalogue: Catalogue,
    tmp_path: Any,
) -> None:
    stranger = Pki(tmp_path / "stranger")  # SHIM_CA_FILE trusts a CA that signed nothing here
    client = await make_shim(
        **trust(
            pki,
            ca_file=str(stranger.ca_file),
            glance_ca_file=str(pki.ca_file),
            keystone_ca_file=str(pki.ca_file),
        ),
        auth="keystone",
        glance_url=URL(https_stack.glance_url),
        keystone_url=URL(https_stack.keystone_url),
    )
    status, _, body = await fetch(
        client, f"/v2.1/{real_stack.demo_a}/images", {"X-Auth-Token": tokens["alice"]}
    )
    assert status == 200, body
    assert [i["id"] for i in json.loads(body)["images"]] == catalogue.listings["alice"]


async def test_verification_off_still_reads(
    make_shim: MakeShim, real_stack: StackInfo, https_stack: HttpsStack, pki: Pki,
    tokens: dict[str, str], catalogue: Catalogue,
) -> None:  # fmt: skip
    client = await make_shim(
        **trust(pki, ca_file=None), tls_verify=False, glance_url=URL(https_stack.glance_url)
    )
    status, _, body = await fetch(
        client, f"/v2.1/{real_stack.demo_a}/images", {"X-Auth-Token": tokens["alice"]}
    )
    assert status == 200, body
    assert [i["id"] for i in json.loads(body)["images"]] == catalogue.listings["alice"]


def in_use(client: Client) -> int:
    """Connections checked out of the Glance and Keystone pool (none once answered)."""
    connector = client.app[SESSION].connector
    assert connector is not None
    return acquired_connections(connector)


def tls_lines(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event.get("event") == "upstream_tls_failed"]


async def test_an_unknown_ca_at_glance_is_a_503_with_one_log_line(
    make_shim: MakeShim, https_stack: HttpsStack, pki: Pki, tokens: dict[str, str],
    tmp_path: Any,
) -> None:  # fmt: skip
    stranger = Pki(tmp_path / "stranger")
    client = await make_shim(
        **trust(pki, ca_file=str(stranger.ca_file)), glance_url=URL(https_stack.glance_url)
    )
    with captured_logs() as logs:
        status, headers, body = await fetch(
            client, "/v2.1/images", {"X-Auth-Token": tokens["alice"]}
        )
    assert (status, json.loads(body)) == (
        503,
        {"serviceUnavailable": {"code": 503, "message": UNAVAILABLE}},
    )
    assert headers["Retry-After"] == "5"
    [line] = tls_lines(logs.events())
    assert line["upstream"] == "glance"
    assert line["url"].startswith(https_stack.glance_url)
    assert in_use(client) == 0
    assert line["reason"].startswith("certificate verify failed: ")


async def test_an_unknown_ca_at_keystone_is_a_503_with_one_log_line(
    make_shim: MakeShim, https_stack: HttpsStack, pki: Pki, tokens: dict[str, str],
    tmp_path: Any,
) -> None:  # fmt: skip
    stranger = Pki(tmp_path / "stranger")
    client = await make_shim(
        **trust(pki, keystone_ca_file=str(stranger.ca_file)),
        auth="keystone",
        glance_url=URL(https_stack.glance_url),
        keystone_url=URL(https_stack.keystone_url),
    )
    with captured_logs() as logs:
        status, headers, body = await fetch(
            client, "/v2.1/images", {"X-Auth-Token": tokens["alice"]}
        )
    assert (status, json.loads(body)) == (
        503,
        {"serviceUnavailable": {"code": 503, "message": IDENTITY_UNAVAILABLE}},
    )
    assert headers["Retry-After"] == "5"
    [line] = tls_lines(logs.events())
    assert (line["upstream"], line["url"]) == (
        "keystone",
        f"{https_stack.keystone_url}/v3/auth/tokens",
    )
    assert line["reason"].startswith("certificate verify failed: ")


async def test_no_client_certificate_for_a_glance_that_demands_one_is_a_503(
    make_shim: MakeShim, https_stack: HttpsStack, pki: Pki, tokens: dict[str, str]
) -> None:
    client = await make_shim(
        **trust(pki, client_cert=None, client_key=None), glance_url=URL(https_stack.glance_url)
    )
    with captured_logs() as logs:
        status, headers, body = await fetch(
            client, "/v2.1/images", {"X-Auth-Token": tokens["alice"]}
        )
    assert (status, headers["Retry-After"]) == (503, "5")
    assert json.loads(body)["serviceUnavailable"]["message"] == UNAVAILABLE
    [line] = tls_lines(logs.events())
    assert (line["upstream"], line["reason"]) == ("glance", "tlsv13 alert certificate required")
    assert in_use(client) == 0


async def test_passthrough_to_nova_over_https(
    make_shim: MakeShim,
    real_stack: StackInfo,
    https_stack: HttpsStack,
    pki: Pki,
    tokens: dict[str, str],
    tmp_path: Any,
) -> None:
    """The real Nova behind TLS: verified with SHIM_NOVA_CA_FILE (SHIM_CA_FILE trusts a CA
    that signed nothing here), its answers relayed; the wrong CA is a 502 and one line."""
    stranger = Pki(tmp_path / "stranger")
    settings = {
        "glance_url": URL(https_stack.glance_url),
        "nova_url": URL(https_stack.nova_url),
        "ca_file": str(stranger.ca_file),
        "nova_ca_file": str(pki.ca_file),
    }
    client = await make_shim(**settings)
    headers = {"X-Auth-Token": tokens["bob"]}
    status, _, body = await fetch(client, "/v2.1/servers", headers)
    assert (status, json.loads(body)) == (200, {"servers": []})
    status, _, body = await fetch(client, "/v2.1/", headers)
    assert status == 200
    assert json.loads(body)["version"]["id"] == "v2.1"

    wrong = await make_shim(**{**settings, "nova_ca_file": None})
    with captured_logs() as logs:
        status, _, body = await fetch(wrong, "/v2.1/servers", headers)
    assert status == 502
    assert json.loads(body)["computeFault"]["code"] == 502
    [line] = tls_lines(logs.events())
    assert (line["upstream"], line["url"]) == ("nova", f"{https_stack.nova_url}/v2.1/servers")
    assert line["reason"].startswith("certificate verify failed: ")
