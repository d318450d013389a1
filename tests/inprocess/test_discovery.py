from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from yarl import URL

from shim.app import create_app
from shim.discovery import (
    advertised_max_version,
    discovery_handler,
    root_document,
    v2_document,
    v21_document,
)
from shim.legacy.microversion import parse_max
from shim.settings import Settings

# docs/nova.md appendix A, as Nova 34 served them on http://127.0.0.1:18774.
ROOT_OBSERVED = (
    b'{"versions": [{"id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "'
    b'", "updated": "2025-07-04T12:00:00Z", "links": [{"rel": "self", "href": "http://127.'
    b'0.0.1:18774/v2/"}]}, {"id": "v2.1", "status": "CURRENT", "version": "2.104", "min_ve'
    b'rsion": "2.1", "updated": "2013-07-23T11:33:21Z", "links": [{"rel": "self", "href": '
    b'"http://127.0.0.1:18774/v2.1/"}]}]}'
)
V2_OBSERVED = (
    b'{"version": {"id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "",'
    b' "updated": "2025-07-04T12:00:00Z", "links": [{"rel": "self", "href": "http://127.0.'
    b'0.1:18774/v2/"}, {"rel": "describedby", "type": "text/html", "href": "http://docs.op'
    b'enstack.org/"}], "media-types": [{"base": "application/json", "type": "application/v'
    b'nd.openstack.compute+json;version=2"}]}}'
)
V21_OBSERVED = (
    b'{"version": {"id": "v2.1", "status": "CURRENT", "version": "2.104", "min_version": "'
    b'2.1", "updated": "2013-07-23T11:33:21Z", "links": [{"rel": "self", "href": "http://1'
    b'27.0.0.1:18774/v2.1/"}, {"rel": "describedby", "type": "text/html", "href": "http://'
    b'docs.openstack.org/"}], "media-types": [{"base": "application/json", "type": "applic'
    b'ation/vnd.openstack.compute+json;version=2.1"}]}}'
)
NOVA_BASE = "http://127.0.0.1:18774"

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[Settings], Awaitable[Client]]


def _settings(**changes: object) -> Settings:
    return Settings(glance_url=URL("http://glance.test:9292")).replace(**changes)


def test_documents_byte_identical_to_nova() -> None:
    assert root_document(NOVA_BASE, "2.104") == ROOT_OBSERVED
    assert v2_document(NOVA_BASE) == V2_OBSERVED
    assert v21_document(NOVA_BASE, "2.104") == V21_OBSERVED
    assert (len(ROOT_OBSERVED), len(V2_OBSERVED), len(V21_OBSERVED)) == (371, 376, 385)


def test_documents_modulo_host_and_version() -> None:
    base = "https://compute.example/legacy"
    assert root_document(base + "/", "2.35") == ROOT_OBSERVED.replace(
        NOVA_BASE.encode(), base.encode()
    ).replace(b'"2.104"', b'"2.35"')
    assert v21_document(base, "2.35") == V21_OBSERVED.replace(
        NOVA_BASE.encode(), base.encode()
    ).replace(b'"2.104"', b'"2.35"')


@pytest.mark.parametrize(
    ("cap", "maximum", "advertised"),
    [("nova", "2.104", "2.35"), ("nova", "2.20", "2.20"), ("off", "2.104", "2.104")],
)
def test_advertised_max_version(cap: str, maximum: str, advertised: str) -> None:
    settings = _settings(microversion_cap=cap, max_microversion=maximum)
    assert advertised_max_version(settings, parse_max(maximum)) == advertised


@pytest.fixture
def make_client(aiohttp_client: AiohttpClient) -> MakeClient:
    async def make(settings: Settings) -> Client:
        async def handle(request: web.Request) -> web.StreamResponse:
            maximum = parse_max(settings.max_microversion)
            response = await discovery_handler(request, settings, maximum)
            return response if response is not None else web.Response(status=599)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return await aiohttp_client(app)

    return make


def _expected(document: bytes, client: Client, version: str = "2.104") -> bytes:
    base = str(client.make_url("")).rstrip("/").encode()
    return document.replace(NOVA_BASE.encode(), base).replace(b'"2.104"', f'"{version}"'.encode())


async def test_root(make_client: MakeClient) -> None:
    client = await make_client(_settings())
    response = await client.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert await response.read() == _expected(ROOT_OBSERVED, client, "2.35")
    assert "OpenStack-API-Version" not in response.headers
    assert "Vary" not in response.headers


@pytest.mark.parametrize("path", ["/v2", "/v2/"])
async def test_v2(make_client: MakeClient, path: str) -> None:
    client = await make_client(_settings())
    response = await client.get(path)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Content-Length"] == str(len(_expected(V2_OBSERVED, client)))
    assert await response.read() == _expected(V2_OBSERVED, client)
    assert "OpenStack-API-Version" not in response.headers
    assert "X-OpenStack-Nova-API-Version" not in response.headers


@pytest.mark.parametrize("path", ["/v2.1", "/v2.1/"])
async def test_v21(make_client: MakeClient, path: str) -> None:
    client = await make_client(_settings(microversion_cap="off"))
    response = await client.get(path)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert await response.read() == _expected(V21_OBSERVED, client, "2.104")
    assert response.headers["OpenStack-API-Version"] == "compute 2.1"
    assert response.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    assert response.headers.getall("Vary") == [
        "OpenStack-API-Version",
        "X-OpenStack-Nova-API-Version",
    ]


async def test_v21_capped(make_client: MakeClient) -> None:
    client = await make_client(_settings())
    assert await (await client.get("/v2.1/")).read() == _expected(V21_OBSERVED, client, "2.35")


async def test_public_url_is_the_base(make_client: MakeClient) -> None:
    settings = _settings(public_url=URL("https://compute.example/legacy/"))
    client = await make_client(settings)
    body = await (await client.get("/", headers={"Host": "evil.example"})).read()
    assert b'"href": "https://compute.example/legacy/v2/"' in body
    assert b"evil" not in body


async def test_forwarded_host_only_from_trusted_peer(make_client: MakeClient) -> None:
    spoof = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}
    untrusted = await make_client(_settings())
    body = await (await untrusted.get("/v2", headers=spoof)).read()
    assert b"api.example" not in body
    trusted = await make_client(_settings(trusted_proxies=frozenset({"127.0.0.0/8"})))
    body = await (await trusted.get("/v2", headers=spoof)).read()
    assert b'"href": "https://api.example/v2/"' in body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2.1/servers"),
        ("GET", "/v3"),
        ("GET", "/v2.1//"),
        ("POST", "/"),
        ("DELETE", "/v2.1"),
    ],
)
async def test_other_requests_are_not_discovery(
    make_client: MakeClient, method: str, path: str
) -> None:
    client = await make_client(_settings())
    assert (await client.request(method, path)).status == 599


async def test_head(make_client: MakeClient) -> None:
    client = await make_client(_settings())
    response = await client.head("/v2.1")
    assert response.status == 200
    assert await response.read() == b""


@pytest.mark.parametrize(
    ("header", "status", "echo", "fault"),
    [
        ("compute 2.50", 200, "2.50", None),
        ("compute latest", 200, "2.104", None),
        ("compute 2.01", 400, None, {"badRequest": {"code": 400, "message": (
            "API Version String 2.01 is of invalid format. Must be of format "
            "MajorNum.MinorNum.")}}),
        ("compute 3.0", 406, "3.0", {"computeFault": {"code": 406, "message": (
            "Version 3.0 is not supported by the API. Minimum is 2.1 and maximum is 2.104.")}}),
    ],
)  # fmt: skip
async def test_v21_reads_the_requested_microversion_as_nova_does(
    aiohttp_client: AiohttpClient,
    header: str,
    status: int,
    echo: str | None,
    fault: dict[str, object] | None,
) -> None:
    """The shim's whole app in standalone mode: no token needed, Nova's version rules."""
    app = create_app(Settings(glance_url=URL("http://glance.invalid:9292"), metrics_listen=None))
    client = await aiohttp_client(app)
    response = await client.get("/v2.1/", headers={"OpenStack-API-Version": header})
    assert response.status == status
    if fault is not None:
        assert await response.json() == fault
    else:
        assert (await response.json())["version"]["version"] == "2.35"
    if echo is None:
        assert "OpenStack-API-Version" not in response.headers
    else:
        assert response.headers["OpenStack-API-Version"] == f"compute {echo}"
        assert response.headers["X-OpenStack-Nova-API-Version"] == echo
        assert response.headers.getall("Vary") == [
            "OpenStack-API-Version",
            "X-OpenStack-Nova-API-Version",
        ]
