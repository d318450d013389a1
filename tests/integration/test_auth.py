"""Auth modes against the real Keystone and Glance (and a recording Keystone for faults).

keystone mode: Nova's project-id 400, keystonemiddleware's 401, revocation within the
cache TTL, 503 when Keystone cannot answer, the service token, Glance found in the
token's catalogue. trusted-headers mode: identity from the front's headers and the same
project check. The recording upstream stands in for Keystone only where the real one
cannot produce the case (5xx, garbage, stalls) or where its requests must be counted.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

import pytest
import structlog
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpServer
from yarl import URL

from shim.faults import FAULT_CONTENT_TYPE, UNAUTHORIZED_BODY
from shim.keys import KEYSTONE
from shim.keystone import IDENTITY_UNAVAILABLE
from shim.legacy.routes import no_image_endpoint
from shim.token_cache import Verdict
from tests.fakes import RecordingUpstream, Reply, refused_url
from tests.integration.catalog_entries import endpoints_in_new_region
from tests.integration.conftest import MakeShim
from tests.stack.catalogue import Catalogue
from tests.stack.info import StackInfo

pytestmark = pytest.mark.integration

Client = TestClient[Any, Any]


async def fetch(
    client: Client, path: str, token: str | None = None, method: str = "GET", **headers: str
) -> tuple[int, Any, bytes]:
    if token is not None:
        headers["X-Auth-Token"] = token
    async with client.request(method, path, headers=headers) as response:
        return response.status, response.headers, await response.read()


def fault(name: str, code: int, message: str) -> bytes:
    return json.dumps({name: {"code": code, "message": message}}).encode()


def mismatch(url_project: str, token_project: str | None) -> bytes:
    return fault(
        "badRequest",
        400,
        f"Malformed request URL: URL's project_id '{url_project}' "
        f"doesn't match Context's project_id '{token_project}'",
    )


def assert_401(stack_keystone: str, status: int, headers: Any, body: bytes) -> None:
    assert status == 401
    assert body == UNAUTHORIZED_BODY
    assert headers["Content-Type"] == "application/json"
    assert headers["WWW-Authenticate"] == f'Keystone uri="{stack_keystone}"'
    assert headers["x-openstack-request-id"].startswith("req-")


def alternate_hrefs(doc: dict[str, Any]) -> list[str]:
    images = doc["images"] if "images" in doc else [doc["image"]]
    return [
        link["href"] for image in images for link in image["links"] if link["rel"] == "alternate"
    ]


def no_double_slash(href: str) -> bool:
    return "//" not in href.split("://", 1)[1]


# --- keystone mode on the real Keystone -------------------------------------------------


async def test_token_of_one_project_on_the_others_url_is_novas_400(
    make_shim: MakeShim, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    client = await make_shim(auth="keystone")
    a, b = real_stack.demo_a, real_stack.demo_b
    image = catalogue.ids["cirros-active"]
    for prefix in ("v2.1", "v2"):
        for path in ("images", "images/detail", f"images/{image}", f"images/{image}/metadata"):
            status, headers, body = await fetch(client, f"/{prefix}/{b}/{path}", tokens["alice"])
            assert (status, body) == (400, mismatch(b, a))
            assert headers["Content-Type"] == FAULT_CONTENT_TYPE
        status, _, body = await fetch(
            client, f"/{prefix}/{b}/images/{image}", tokens["alice"], method="DELETE"
        )
        assert (status, body) == (400, mismatch(b, a))
        status, _, _ = await fetch(client, f"/{prefix}/{a}/images/{image}", tokens["alice"])
        assert status == 200
    # dave is in both projects: his token's scope decides, not his user.
    status, _, body = await fetch(client, f"/v2.1/{a}/images", tokens["dave-b"])
    assert (status, body) == (400, mismatch(a, b))
    status, _, _ = await fetch(client, f"/v2.1/{b}/images", tokens["dave-b"])
    assert status == 200


@pytest.mark.parametrize("token", [None, "", "not-a-token", "gAAAAAB" + "x" * 180, "y" * 5000])
async def test_missing_or_invalid_token_gets_keystonemiddlewares_401(
    make_shim: MakeShim, real_stack: StackInfo, token: str | None
) -> None:
    client = await make_shim(auth="keystone")
    with structlog.testing.capture_logs() as logs:
        for path in ("/v2.1/images", f"/v2/{real_stack.demo_a}/images/detail"):
            assert_401(real_stack.keystone_url, *await fetch(client, path, token))
    if token:
        assert token not in repr(logs)


async def test_a_revoked_token_stops_working_within_the_cache_ttl(
    make_shim: MakeShim, real_stack: StackInfo, catalogue: Catalogue
) -> None:
    ttl = 2.0
    client = await make_shim(auth="keystone", token_cache_ttl=ttl)
    token = await asyncio.to_thread(real_stack.new_token, "bob")
    status, _, _ = await fetch(client, "/v2.1/images", token)
    assert status == 200
    await asyncio.to_thread(real_stack.revoke_token, token)
    revoked_at = time.monotonic()
    status, _, _ = await fetch(client, "/v2.1/images", token)
    assert status in (200, 401)  # inside the TTL the cached verdict may still answer
    await asyncio.sleep(max(0.0, revoked_at + ttl + 0.1 - time.monotonic()))
    assert_401(real_stack.keystone_url, *await fetch(client, "/v2.1/images", token))
    # The shim's own verdict (Glance's keystonemiddleware may still trust it for minutes).
    assert client.app[KEYSTONE].cache.get(token) == Verdict(None)


async def test_a_token_glance_refuses_is_dropped_from_the_cache(
    make_shim: MakeShim, real_stack: StackInfo
) -> None:
    client = await make_shim(auth="keystone", token_cache_ttl=300.0)
    cache = client.app[KEYSTONE].cache
    token = await asyncio.to_thread(real_stack.new_token, "bob")
    # Validated and cached without Glance seeing the token: the project check refuses it.
    status, _, _ = await fetch(client, f"/v2.1/{real_stack.demo_a}/images", token)
    assert status == 400
    cached = cache.get(token)
    assert cached is not None
    assert cached.value is not None
    await asyncio.to_thread(real_stack.revoke_token, token)
    # The cache still vouches for it; Glance asks Keystone and refuses it.
    assert_401(real_stack.keystone_url, *await fetch(client, "/v2.1/images", token))
    assert cache.get(token) is None
    # So the next request asks Keystone again, whose verdict is now the cached one.
    assert_401(real_stack.keystone_url, *await fetch(client, "/v2.1/images", token))
    assert cache.get(token) == Verdict(None)


MICROVERSION_HEADERS = {
    "OpenStack-API-Version": "compute 2.20",
    "X-OpenStack-Nova-API-Version": "2.20",
}


@pytest.mark.parametrize("mode", ["passthrough", "keystone", "trusted-headers"])
@pytest.mark.parametrize("token", [None, "gAAAAAB" + "x" * 180])
async def test_a_401_carries_no_microversion_headers_and_no_vary(
    make_shim: MakeShim, real_stack: StackInfo, mode: str, token: str | None
) -> None:
    client = await make_shim(auth=mode)
    a = real_stack.demo_a
    headers = dict(MICROVERSION_HEADERS)
    if mode == "trusted-headers":
        # A front vouched for the project; the token is then Glance's to refuse.
        headers |= {"X-Project-Id": a, "X-Roles": "reader", "X-Identity-Status": "Confirmed"}
    for path in ("/v2.1/images", f"/v2.1/{a}/images/detail", f"/v2/{a}/images"):
        status, answer, body = await fetch(client, path, token, **headers)
        assert_401(real_stack.keystone_url, status, answer, body)
        for name in (*MICROVERSION_HEADERS, "Vary"):
            assert name not in answer, (mode, path, name)


async def test_unreachable_keystone_is_a_503_never_a_pass(
    make_shim: MakeShim, real_stack: StackInfo, tokens: dict[str, str]
) -> None:
    down = refused_url()
    client = await make_shim(auth="keystone", keystone_url=down)
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):  # a failure to ask is not cached as a verdict
            status, headers, body = await fetch(client, "/v2.1/images", tokens["alice"])
            assert status == 503
            assert body == fault("serviceUnavailable", 503, IDENTITY_UNAVAILABLE)
            assert headers["Retry-After"] == "5"
            assert headers["Content-Type"] == FAULT_CONTENT_TYPE
    assert tokens["alice"] not in repr(logs)
    assert len(client.app[KEYSTONE].cache) == 0
    # No token is still a plain 401, naming the configured Keystone.
    status, headers, body = await fetch(client, "/v2.1/images")
    assert (status, body) == (401, UNAUTHORIZED_BODY)
    assert headers["WWW-Authenticate"] == f'Keystone uri="{str(down).rstrip("/")}"'


async def test_service_credentials_validate_tokens(
    make_shim: MakeShim, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    client = await make_shim(
        auth="keystone",
        service_username="glance",
        service_password=real_stack.password("glance"),
        service_project="service",
    )
    status, _, body = await fetch(client, f"/v2.1/{real_stack.demo_b}/images", tokens["bob"])
    assert status == 200
    assert {image["id"] for image in json.loads(body)["images"]} == set(catalogue.listings["bob"])
    assert_401(real_stack.keystone_url, *await fetch(client, "/v2.1/images", "garbage"))

    wrong = await make_shim(
        auth="keystone",
        service_username="glance",
        service_password="wrong-password",
        service_project="service",
    )
    status, headers, body = await fetch(wrong, "/v2.1/images", tokens["bob"])
    assert (status, body) == (503, fault("serviceUnavailable", 503, IDENTITY_UNAVAILABLE))
    assert headers["Retry-After"] == "5"


async def test_glance_from_the_tokens_catalogue(
    make_shim: MakeShim, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    client = await make_shim(auth="keystone", glance_url=None)
    status, _, body = await fetch(
        client, f"/v2.1/{real_stack.demo_a}/images/detail", tokens["alice"]
    )
    assert status == 200
    doc = json.loads(body)
    assert [image["id"] for image in doc["images"]] == catalogue.listings["alice"]
    hrefs = alternate_hrefs(doc)
    assert hrefs
    assert all(href.startswith(f"{real_stack.glance_url}/images/") for href in hrefs)
    image = catalogue.ids["snapshot-of-vm"]
    status, _, body = await fetch(client, f"/v2/images/{image}", tokens["alice"])
    assert status == 200
    assert alternate_hrefs(json.loads(body)) == [f"{real_stack.glance_url}/images/{image}"]
    # A private image of demo-a is not bob's through the catalogue's Glance either.
    status, _, _ = await fetch(client, f"/v2.1/images/{image}", tokens["bob"])
    assert status == 404

    public = await make_shim(
        auth="keystone", glance_url=None, glance_public_url=URL("https://images.example//glance/")
    )
    status, _, body = await fetch(public, f"/v2.1/images/{image}", tokens["alice"])
    assert status == 200
    assert alternate_hrefs(json.loads(body)) == [f"https://images.example/glance/images/{image}"]


async def test_catalogue_endpoints_with_version_suffixes_are_normalised(
    make_shim: MakeShim, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    urls = {
        "internal": f"{real_stack.glance_url}/v2/",
        "public": "https://cloud.example/image/v2/",
    }
    image = catalogue.ids["snapshot-of-vm"]
    async with endpoints_in_new_region(real_stack, "image", urls) as region:
        client = await make_shim(
            auth="keystone", glance_url=None, catalog_interface="internal", catalog_region=region
        )
        path = f"/v2.1/{real_stack.demo_a}/images/detail?limit=5"
        status, _, body = await fetch(client, path, tokens["alice"])
        assert status == 200
        doc = json.loads(body)
        assert [i["id"] for i in doc["images"]] == catalogue.listings["alice"][:5]
        hrefs = alternate_hrefs(doc)
        assert len(hrefs) == 5
        assert all(href.startswith("https://cloud.example/image/images/") for href in hrefs)
        every_href = [link["href"] for i in doc["images"] for link in i["links"]]
        every_href += [link["href"] for link in doc["images_links"]]
        assert all(no_double_slash(href) for href in every_href)
        status, _, body = await fetch(client, f"/v2.1/images/{image}", tokens["alice"])
        assert status == 200
        assert alternate_hrefs(json.loads(body)) == [f"https://cloud.example/image/images/{image}"]


async def test_no_image_endpoint_in_the_catalogue_is_a_500_naming_what_was_searched(
    make_shim: MakeShim, real_stack: StackInfo, tokens: dict[str, str]
) -> None:
    # A permanent misconfiguration: no Retry-After inviting the client to try again.
    client = await make_shim(auth="keystone", glance_url=None, catalog_region="no-such-region")
    with structlog.testing.capture_logs() as logs:
        status, headers, body = await fetch(client, "/v2.1/images", tokens["alice"])
    message = "No public image service endpoint in region no-such-region was found in the "
    message += "service catalogue of the token."
    assert no_image_endpoint("public", "no-such-region") == message
    assert (status, body) == (500, fault("computeFault", 500, message))
    assert "Retry-After" not in headers
    [line] = [entry for entry in logs if entry["event"] == "no_image_endpoint"]
    assert (line["interface"], line["region"], line["log_level"]) == (
        "public",
        "no-such-region",
        "error",
    )
    # Auth still comes first: a bad token is a 401, not the 503.
    assert_401(real_stack.keystone_url, *await fetch(client, "/v2.1/images", "garbage"))


# --- trusted-headers and passthrough on the real Glance ----------------------------------


async def test_trusted_headers_mode_checks_the_headers_project(
    make_shim: MakeShim, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    client = await make_shim(auth="trusted-headers")
    a, b = real_stack.demo_a, real_stack.demo_b
    alice = {
        "X-Project-Id": a,
        "X-User-Id": real_stack.user_ids["alice"],
        "X-Roles": "member,reader",
        "X-Identity-Status": "Confirmed",
    }
    status, _, body = await fetch(client, f"/v2.1/{a}/images", tokens["alice"], **alice)
    assert status == 200
    assert [i["id"] for i in json.loads(body)["images"]] == catalogue.listings["alice"]
    status, headers, body = await fetch(client, f"/v2.1/{b}/images", tokens["alice"], **alice)
    assert (status, body) == (400, mismatch(b, a))
    assert headers["Content-Type"] == FAULT_CONTENT_TYPE
    tenant = {"X-Tenant-Id": a, "X-Roles": "reader"}
    status, _, body = await fetch(client, f"/v2/{b}/images/detail", tokens["alice"], **tenant)
    assert (status, body) == (400, mismatch(b, a))
    # Nobody vouched: no project, or keystonemiddleware said Invalid (delay_auth_decision).
    keystone = real_stack.keystone_url
    assert_401(keystone, *await fetch(client, "/v2.1/images", tokens["alice"]))
    invalid = dict(alice, **{"X-Identity-Status": "Invalid"})
    assert_401(keystone, *await fetch(client, "/v2.1/images", tokens["alice"], **invalid))
    # The token still goes to Glance, which has the last word: none → Glance's 401.
    status, _, body = await fetch(client, f"/v2.1/{a}/images", **alice)
    assert (status, body) == (401, UNAUTHORIZED_BODY)


async def test_passthrough_mode_leaves_the_project_to_glance(
    make_shim: MakeShim, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    client = await make_shim(auth="passthrough")
    status, _, body = await fetch(client, f"/v2.1/{real_stack.demo_b}/images", tokens["alice"])
    assert status == 200  # docs/contract.md §6: nothing is known about the token, so no 400
    assert [i["id"] for i in json.loads(body)["images"]] == catalogue.listings["alice"]


# --- a recording Keystone: what the real one cannot be made to do ------------------------


def token_body(project: str = "p" * 32, expires_in: float = 3600.0) -> dict[str, Any]:
    # To the microsecond, as Keystone writes it: whole seconds would cut up to 1 s off.
    expires = datetime.fromtimestamp(time.time() + expires_in, UTC)
    return {
        "token": {
            "user": {"id": "u" * 32, "name": "someone"},
            "project": {"id": project, "name": "p"},
            "roles": [{"id": "r", "name": "reader"}],
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "methods": ["password"],
        }
    }


EMPTY_LIST = Reply.json({"images": [], "schema": "/v2/schemas/images", "first": "/v2/images"})


@dataclass(frozen=True, slots=True)
class FakeIdentity:
    """A recording Keystone and an empty Glance, and shims over them in keystone mode."""

    keystone: RecordingUpstream
    keystone_url: URL
    glance_url: URL
    make_shim: MakeShim

    async def shim(self, **settings: Any) -> Client:
        """``make_shim`` with ``auth="keystone"`` and both fakes' URLs unless *settings* say."""
        defaults = {
            "auth": "keystone",
            "keystone_url": self.keystone_url,
            "glance_url": self.glance_url,
        }
        return await self.make_shim(**{**defaults, **settings})


@pytest.fixture
async def fake(make_shim: MakeShim, aiohttp_server: AiohttpServer) -> FakeIdentity:
    keystone, glance = RecordingUpstream(), RecordingUpstream(default=EMPTY_LIST)
    keystone_url = await keystone.start(aiohttp_server)
    return FakeIdentity(keystone, keystone_url, await glance.start(aiohttp_server), make_shim)


SERVICE_USER: Final = {
    "service_username": "shim",
    "service_password": "secret-pw",
    "service_project": "service",
}


def validations(keystone: RecordingUpstream) -> list[Any]:
    return [r for r in keystone.requests if r.method == "GET"]


async def assert_identity_unavailable(client: Client, token: str) -> None:
    """A listing with *token* is the 503 of an identity service that did not answer, and
    nothing is cached for the token."""
    status, headers, body = await fetch(client, "/v2.1/images", token)
    assert (status, body) == (503, fault("serviceUnavailable", 503, IDENTITY_UNAVAILABLE))
    assert headers["Retry-After"] == "5"
    assert len(client.app[KEYSTONE].cache) == 0


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=500),
        Reply(status=502),
        Reply(status=503),
        Reply(status=403),  # a service user without the right to validate
        Reply(status=200, body=b"<html>not json</html>"),
        Reply.json({"token": {"user": {"id": "u"}}}),  # no expires_at
        Reply.json(["not", "a", "token"]),
        Reply(raw=b"garbage\r\n\r\n"),
        Reply(abort_before_response=True),
        replace(Reply.json(token_body()), delay=2.0),  # longer than the shim waits for Keystone
    ],
)
async def test_keystone_failures_are_503(fake: FakeIdentity, reply: Reply) -> None:
    fake.keystone.on("/v3/auth/tokens", reply, method="GET")
    client = await fake.shim(keystone_timeout=0.5)
    await assert_identity_unavailable(client, "some-token")


async def test_keystone_calls_have_a_deadline_of_their_own(fake: FakeIdentity) -> None:
    issued = Reply.json(token_body(), status=201, headers=(("X-Subject-Token", "svc"),))
    fake.keystone.on("/v3/auth/tokens", replace(issued, delay=2.0), method="POST")
    fake.keystone.on("/v3/auth/tokens", replace(Reply.json(token_body()), delay=1.0), method="GET")
    # Glance's deadline does not cut a validation short: SHIM_KEYSTONE_TIMEOUT does.
    patient = await fake.shim(glance_timeout=0.5, keystone_timeout=10.0)
    assert (await fetch(patient, "/v2.1/images", "tok"))[0] == 200
    # The service token is a Keystone call too: stalled past the deadline, a 503.
    hurried = await fake.shim(glance_timeout=30.0, keystone_timeout=0.5, **SERVICE_USER)
    await assert_identity_unavailable(hurried, "tok")


async def test_validation_request_and_negative_cache(fake: FakeIdentity) -> None:
    keystone = fake.keystone
    keystone.on("/v3/auth/tokens", Reply.json({"error": {"code": 404}}, status=404), method="GET")
    # SHIM_KEYSTONE_URL may name the v3 root: the version is not doubled, and the
    # Keystone root (without /v3) is what the shim runs with and points clients to.
    client = await fake.shim(keystone_url=fake.keystone_url / "v3" / "")
    root = str(fake.keystone_url).rstrip("/")
    for _ in range(3):
        status, headers, body = await fetch(client, "/v2.1/images", "bad-token")
        assert (status, body) == (401, UNAUTHORIZED_BODY)
        assert headers["WWW-Authenticate"] == f'Keystone uri="{root}"'
    [sent] = validations(keystone)  # the negative cache answered the other two
    assert (sent.raw_path, sent.query_string) == ("/v3/auth/tokens", "nocatalog")
    assert sent.header("X-Subject-Token") == "bad-token"
    assert sent.header("X-Auth-Token") == "bad-token"  # a token may validate itself
    # A token that cannot be a token never reaches Keystone.
    status, _, _ = await fetch(client, "/v2.1/images", "z" * 5000)
    assert status == 401
    assert len(validations(keystone)) == 1


async def test_concurrent_requests_with_one_token_validate_once(fake: FakeIdentity) -> None:
    body = json.dumps(token_body()).encode()
    slow = Reply(status=200, headers=(("Content-Type", "application/json"),), body=body, delay=0.3)
    fake.keystone.on("/v3/auth/tokens", slow, method="GET")
    client = await fake.shim()
    results = await asyncio.gather(*(fetch(client, "/v2.1/images", "tok-1") for _ in range(10)))
    assert [status for status, _, _ in results] == [200] * 10
    assert len(validations(fake.keystone)) == 1
    await fetch(client, "/v2.1/images", "tok-2")
    assert len(validations(fake.keystone)) == 2


async def test_cache_never_outlives_the_tokens_expiry(fake: FakeIdentity) -> None:
    fake.keystone.on("/v3/auth/tokens", Reply.json(token_body(expires_in=2.0)), method="GET")
    client = await fake.shim()
    assert (await fetch(client, "/v2.1/images", "short"))[0] == 200
    assert (await fetch(client, "/v2.1/images", "short"))[0] == 200
    assert len(validations(fake.keystone)) == 1
    await asyncio.sleep(2.1)  # the TTL is 300 s, but the token has expired: ask again
    assert (await fetch(client, "/v2.1/images", "short"))[0] == 200
    assert len(validations(fake.keystone)) == 2


async def test_service_token_is_reused_and_renewed_on_401(fake: FakeIdentity) -> None:
    keystone = fake.keystone
    issued = [
        Reply.json(token_body(), status=201, headers=(("X-Subject-Token", f"svc-{n}"),))
        for n in (1, 2)
    ]
    keystone.on("/v3/auth/tokens", *issued, method="POST")
    keystone.on(
        "/v3/auth/tokens",
        Reply.json(token_body()),
        Reply.json(token_body()),
        Reply(status=401),  # svc-1 revoked behind our back
        Reply.json(token_body()),
        method="GET",
    )
    client = await fake.shim(**SERVICE_USER, service_domain="Default")
    for token in ("t1", "t2", "t3"):
        assert (await fetch(client, "/v2.1/images", token))[0] == 200
    posts = [r for r in keystone.requests if r.method == "POST"]
    assert len(posts) == 2
    auth = json.loads(posts[0].body)["auth"]
    assert auth["identity"]["password"]["user"] == {
        "name": "shim",
        "domain": {"name": "Default"},
        "password": "secret-pw",
    }
    assert auth["scope"] == {"project": {"name": "service", "domain": {"name": "Default"}}}
    assert (posts[0].raw_path, posts[0].query_string) == ("/v3/auth/tokens", "nocatalog")
    gets = validations(keystone)
    assert [g.header("X-Auth-Token") for g in gets] == ["svc-1", "svc-1", "svc-1", "svc-2"]
    assert [g.header("X-Subject-Token") for g in gets] == ["t1", "t2", "t3", "t3"]
