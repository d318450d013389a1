"""The real Keystone and Glance over HTTPS, behind a CA the tests made (``https_stack``).

The shim verifies them through its settings in every auth mode, Glance found in the
token's catalogue included, presents its client certificate to a Glance that demands one,
and turns each way the TLS set-up can be wrong into the answer and the one log line an
operator can act on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Https:
    """The stack over HTTPS and the tests' CA: shim settings that trust them."""

    stack: HttpsStack
    pki: Pki

    @property
    def ca_file(self) -> str:
        return str(self.pki.ca_file)

    def trust(self, **overrides: Any) -> dict[str, Any]:
        """The tests' CA, the client certificate and the HTTPS Glance; *overrides* win."""
        return {
            "ca_file": self.ca_file,
            "client_cert": str(self.pki.client.cert),
            "client_key": str(self.pki.client.key),
            "glance_url": URL(self.stack.glance_url),
            **overrides,
        }

    def keystone(self, **overrides: Any) -> dict[str, Any]:
        """`trust` in keystone mode, with the HTTPS Keystone."""
        return self.trust(auth="keystone", keystone_url=URL(self.stack.keystone_url), **overrides)


@pytest.fixture
def https(https_stack: HttpsStack, pki: Pki) -> Https:
    return Https(https_stack, pki)


@pytest.fixture
def stranger_ca(tmp_path: Any) -> str:
    """The certificate of a CA that signed nothing here."""
    return str(Pki(tmp_path / "stranger").ca_file)


@dataclass(frozen=True, slots=True)
class Alice:
    """alice reading her images through a shim, and what she must see."""

    stack: StackInfo
    catalogue: Catalogue
    token: str

    async def assert_lists(self, client: Client) -> None:
        """Her project's image list is her catalogue's."""
        path = f"/v2.1/{self.stack.demo_a}/images"
        status, _, body = await fetch(client, path, {"X-Auth-Token": self.token})
        assert status == 200, body
        assert [i["id"] for i in json.loads(body)["images"]] == self.catalogue.listings["alice"]

    async def assert_reads(self, client: Client, **headers: str) -> None:
        """Her detailed list and the snapshot's metadata are the catalogue's."""
        headers = {"X-Auth-Token": self.token, **headers}
        prefix, image = f"/v2.1/{self.stack.demo_a}", self.catalogue.ids["snapshot-of-vm"]
        status, _, body = await fetch(client, f"{prefix}/images/detail", headers)
        assert status == 200, body
        assert [i["id"] for i in json.loads(body)["images"]] == self.catalogue.listings["alice"]
        status, _, body = await fetch(client, f"{prefix}/images/{image}/metadata", headers)
        assert status == 200, body
        metadata = json.loads(body)["metadata"]
        assert (metadata["image_type"], metadata["instance_uuid"]) == (
            "snapshot",
            self.catalogue.image("snapshot-of-vm")["instance_uuid"],
        )


@pytest.fixture
def alice(real_stack: StackInfo, catalogue: Catalogue, tokens: dict[str, str]) -> Alice:
    return Alice(real_stack, catalogue, tokens["alice"])


@pytest.mark.parametrize("mode", ["passthrough", "keystone", "trusted-headers", "catalogue"])
async def test_every_auth_mode_reads_through_the_https_stack(
    make_shim: MakeShim, https: Https, alice: Alice, mode: str
) -> None:
    settings = https.trust(
        keystone_url=URL(https.stack.keystone_url),
        auth="keystone" if mode == "catalogue" else mode,
    )
    headers = {}
    if mode == "trusted-headers":
        headers = {
            "X-Project-Id": alice.stack.demo_a,
            "X-Roles": "member,reader",
            "X-Identity-Status": "Confirmed",
        }
    if mode == "catalogue":
        # Glance comes from the token's catalogue: an https endpoint, verified the same way.
        urls = {"public": f"{https.stack.glance_url}/v2/"}
        async with endpoints_in_new_region(alice.stack, "image", urls) as region:
            settings.update(glance_url=None, catalog_region=region)
            await alice.assert_reads(await make_shim(**settings), **headers)
            return
    await alice.assert_reads(await make_shim(**settings), **headers)


async def test_per_upstream_ca_files_override_the_common_one(
    make_shim: MakeShim, https: Https, alice: Alice, stranger_ca: str
) -> None:
    """SHIM_CA_FILE trusts the stranger's CA; SHIM_GLANCE_CA_FILE and SHIM_KEYSTONE_CA_FILE
    the right one."""
    ca_file = https.ca_file
    settings = https.keystone(ca_file=stranger_ca, glance_ca_file=ca_file, keystone_ca_file=ca_file)
    await alice.assert_lists(await make_shim(**settings))


async def test_verification_off_still_reads(
    make_shim: MakeShim, https: Https, alice: Alice
) -> None:
    await alice.assert_lists(await make_shim(**https.trust(ca_file=None, tls_verify=False)))


def in_use(client: Client) -> int:
    """Connections checked out of the Glance and Keystone pool (none once answered)."""
    connector = client.app[SESSION].connector
    assert connector is not None
    return acquired_connections(connector)


def tls_lines(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event.get("event") == "upstream_tls_failed"]


async def listing_refused_over_tls(client: Client, token: str) -> tuple[Any, dict[str, Any]]:
    """``GET /v2.1/images`` through an upstream the shim cannot trust: (status, Retry-After,
    body) of the answer, and the one ``upstream_tls_failed`` line logged for it."""
    with captured_logs() as logs:
        status, headers, body = await fetch(client, "/v2.1/images", {"X-Auth-Token": token})
    [line] = tls_lines(logs.events())
    return (status, headers["Retry-After"], json.loads(body)), line


@pytest.mark.parametrize("upstream", ["glance", "keystone"])
async def test_an_unknown_ca_is_a_503_with_one_log_line(
    make_shim: MakeShim, https: Https, alice: Alice, stranger_ca: str, upstream: str
) -> None:
    """SHIM_CA_FILE (for Glance) or SHIM_KEYSTONE_CA_FILE names the stranger's CA."""
    if upstream == "glance":
        client = await make_shim(**https.trust(ca_file=stranger_ca))
        message = UNAVAILABLE
    else:
        client = await make_shim(**https.keystone(keystone_ca_file=stranger_ca))
        message = IDENTITY_UNAVAILABLE
    answer, line = await listing_refused_over_tls(client, alice.token)
    assert answer == (503, "5", {"serviceUnavailable": {"code": 503, "message": message}})
    assert line["upstream"] == upstream
    assert line["reason"].startswith("certificate verify failed: ")
    assert in_use(client) == 0
    if upstream == "glance":
        assert line["url"].startswith(https.stack.glance_url)
    else:
        assert line["url"] == f"{https.stack.keystone_url}/v3/auth/tokens"


async def test_no_client_certificate_for_a_glance_that_demands_one_is_a_503(
    make_shim: MakeShim, https: Https, alice: Alice
) -> None:
    client = await make_shim(**https.trust(client_cert=None, client_key=None))
    answer, line = await listing_refused_over_tls(client, alice.token)
    assert answer == (503, "5", {"serviceUnavailable": {"code": 503, "message": UNAVAILABLE}})
    assert (line["upstream"], line["reason"]) == ("glance", "tlsv13 alert certificate required")
    assert in_use(client) == 0


async def test_passthrough_to_nova_over_https(
    make_shim: MakeShim, https: Https, tokens: dict[str, str], stranger_ca: str
) -> None:
    """The real Nova behind TLS: verified with SHIM_NOVA_CA_FILE (SHIM_CA_FILE trusts a CA
    that signed nothing here), its answers relayed; the wrong CA is a 502 and one line."""
    settings = {
        "glance_url": URL(https.stack.glance_url),
        "nova_url": URL(https.stack.nova_url),
        "ca_file": stranger_ca,
        "nova_ca_file": https.ca_file,
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
    assert (line["upstream"], line["url"]) == ("nova", f"{https.stack.nova_url}/v2.1/servers")
    assert line["reason"].startswith("certificate verify failed: ")
