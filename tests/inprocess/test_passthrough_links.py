"""Links kept on the shim in passthrough answers, byte by byte, against a recording upstream.

The real Nova shows the links it builds (tests/integration/test_nova_links.py); these
cases need bytes and framings Nova does not produce on demand: a body split in the middle
of a link, an answer of unknown length that must keep streaming, compressed JSON, a
non-JSON body naming Nova, an answer cut short.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from shim.app import create_app
from shim.nova_links import BUFFERED_BODY_MAX
from shim.settings import Settings
from tests.fakes import RecordingUpstream, Reply
from tests.fakes.serving import running

StartShim = Callable[..., Awaitable[URL]]


@pytest.fixture
async def start_shim(upstream_url: URL) -> AsyncIterator[StartShim]:
    async with AsyncExitStack() as stack:

        async def start(*, nova_url: URL | None = None, **changes: Any) -> URL:
            settings = Settings(
                glance_url=URL("http://glance.invalid:9292"), nova_url=nova_url or upstream_url
            ).replace(**changes)
            return await stack.enter_async_context(running(create_app(settings)))

        yield start


@pytest.fixture
async def shim(start_shim: StartShim) -> URL:
    """A shim with default settings in front of ``fake``."""
    return await start_shim()


@pytest.fixture
def nova(upstream_url: URL) -> str:
    """The base of the links ``fake`` writes, as Nova writes them (no trailing slash)."""
    return base(upstream_url)


def base(url: URL) -> str:
    """*url* as links start with it: without a trailing slash."""
    return str(url).rstrip("/")


def flavors(base: str, count: int = 2) -> bytes:
    """A flavor list as Nova writes it: json.dumps with its default separators."""
    items = [
        {
            "id": str(n),
            "links": [
                {"href": f"{base}/v2.1/flavors/{n}", "rel": "self"},
                {"href": f"{base}/flavors/{n}", "rel": "bookmark"},
            ],
            "name": f"m1.f{n}",
            "description": "x" * 200,
        }
        for n in range(count)
    ]
    return json.dumps({"flavors": items}).encode()


def json_reply(body: bytes, **extra: Any) -> Reply:
    return Reply(headers=[("Content-Type", "application/json")], body=body, **extra)


async def get(
    client: aiohttp.ClientSession, url: URL, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    async with client.get(url, headers=headers) as response:
        names = {k.decode().lower(): v.decode() for k, v in response.raw_headers}
        return response.status, names, await response.read()


@pytest.mark.parametrize(
    ("nova_path", "public_url"),
    [
        ("", None),
        ("/compute", None),
        ("", "https://compute.example.com"),
        ("/compute", "https://compute.example.com/legacy/"),
    ],
)
async def test_json_links_moved_to_the_public_base_with_an_exact_length(
    start_shim: StartShim,
    fake: RecordingUpstream,
    client: aiohttp.ClientSession,
    upstream_url: URL,
    nova_path: str,
    public_url: str | None,
) -> None:
    nova = base(upstream_url.with_path(nova_path))
    shim = await start_shim(nova_url=URL(nova), public_url=URL(public_url) if public_url else None)
    fake.on(f"{nova_path}/v2.1/flavors", json_reply(flavors(nova)))
    status, headers, body = await get(client, shim / "v2.1/flavors")
    public = (public_url or str(shim)).rstrip("/")
    assert status == 200
    assert body == flavors(public)
    assert headers["content-length"] == str(len(body))
    assert "transfer-encoding" not in headers


async def test_links_on_the_host_the_shim_forwarded_are_moved(
    start_shim: StartShim, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    # Nova with enable_proxy_headers_parsing builds links on X-Forwarded-Proto/-Host.
    shim = await start_shim(public_url=URL("https://compute.example.com"))
    told = f"http://{shim.host}:{shim.port}"
    fake.on("/v2.1/flavors", json_reply(flavors(told)))
    _, _, body = await get(client, shim / "v2.1/flavors")
    assert fake.last.header("X-Forwarded-Host") == f"{shim.host}:{shim.port}"
    assert body == flavors("https://compute.example.com")


async def test_json_without_nova_links_passes_byte_for_byte(
    shim: URL, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    document = (
        b'{"limits":  {"rate": [], "absolute": {"maxTotalCores": 20}},\n'
        b' "links": [{"href": "http://docs.openstack.org/", "rel": "describedby"}]}'
    )
    fake.on("/v2.1/limits", json_reply(document))
    status, headers, body = await get(client, shim / "v2.1/limits")
    assert (status, body) == (200, document)
    assert headers["content-length"] == str(len(document))


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/octet-stream", "application/jsonx", None]
)
async def test_non_json_naming_nova_passes_byte_for_byte(
    shim: URL,
    fake: RecordingUpstream,
    client: aiohttp.ClientSession,
    nova: str,
    content_type: str | None,
) -> None:
    body = flavors(nova)
    headers = [("Content-Type", content_type)] if content_type else []
    fake.on("/v2.1/raw", Reply(headers=headers, body=body))
    status, answer_headers, answer = await get(client, shim / "v2.1/raw")
    assert (status, answer) == (200, body)
    assert answer_headers["content-length"] == str(len(body))


async def test_compressed_json_is_never_decoded(
    shim: URL, fake: RecordingUpstream, client: aiohttp.ClientSession, nova: str
) -> None:
    document = flavors(nova)
    fake.on("/v2.1/flavors", json_reply(document, gzip=True))
    async with client.get(shim / "v2.1/flavors", headers={"Accept-Encoding": "gzip"}) as response:
        raw = await response.read()
        assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw) == document


async def test_large_json_is_rewritten_as_it_streams_even_split_inside_a_link(
    shim: URL, fake: RecordingUpstream, client: aiohttp.ClientSession, nova: str
) -> None:
    document = flavors(nova, count=6000)
    assert len(document) > BUFFERED_BODY_MAX
    # Pieces of prime length: splits fall inside keys, hosts and paths of links.
    pieces = [document[i : i + 4099] for i in range(0, len(document), 4099)]
    fake.on(
        "/v2.1/flavors/detail",
        Reply(
            headers=[
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(document))),
            ],
            chunks=pieces,
        ),
    )
    status, headers, body = await get(client, shim / "v2.1/flavors/detail")
    assert status == 200
    assert body == flavors(base(shim), count=6000)
    assert "content-length" not in headers
    assert headers["transfer-encoding"] == "chunked"


async def test_json_of_unknown_length_keeps_streaming(
    start_shim: StartShim, client: aiohttp.ClientSession
) -> None:
    """The first part reaches the client, links moved, while Nova still holds the rest."""
    release = asyncio.Event()
    first = b'{"servers": [' + b'{"name": "' + b"n" * 70_000 + b'", "links": [{"href": "'

    async def answer(request: web.Request) -> web.StreamResponse:
        base = f"http://{request.host}"
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(first + f'{base}/v2.1/servers/1", "rel": "self"}}]}}'.encode())
        await response.write(b', {"id": "y"}' + b" " * 4000)
        await release.wait()
        await response.write(b"]}")
        await response.write_eof()
        return response

    upstream = web.Application()
    upstream.router.add_get("/v2.1/servers", answer)
    async with running(upstream) as nova_url:
        shim = await start_shim(nova_url=nova_url)
        async with client.get(shim / "v2.1/servers") as response:
            assert response.headers["Transfer-Encoding"] == "chunked"
            seen = b""
            async with asyncio.timeout(30):  # a shim that buffered would wait here forever
                while b"/v2.1/servers/1" not in seen:
                    seen += await response.content.readany()
            release.set()
            body = seen + await response.read()
    assert f'"href": "{base(shim)}/v2.1/servers/1"'.encode() in body
    assert json.loads(body)["servers"][1] == {"id": "y"}


async def test_location_kept_on_the_shim_whatever_the_body(
    shim: URL, fake: RecordingUpstream, client: aiohttp.ClientSession, nova: str
) -> None:
    fake.on(
        "/v2.1/servers",
        Reply(
            status=202,
            headers=[("Location", f"{nova}/v2.1/servers/9"), ("Content-Type", "text/plain")],
            body=b"accepted",
        ),
    )
    async with client.post(shim / "v2.1/servers", data=b"{}", allow_redirects=False) as response:
        assert response.status == 202
        assert response.headers["Location"] == f"{base(shim)}/v2.1/servers/9"
        assert await response.read() == b"accepted"


async def test_head_keeps_novas_length(
    shim: URL, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    fake.on(
        "/v2.1/flavors",
        Reply(headers=[("Content-Type", "application/json"), ("Content-Length", "1234")]),
    )
    async with client.head(shim / "v2.1/flavors") as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == "1234"


async def test_answer_cut_short_while_held_whole_is_a_502(
    shim: URL, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    fake.on(
        "/v2.1/flavors",
        Reply(
            headers=[("Content-Type", "application/json"), ("Content-Length", "5000")],
            chunks=[b'{"flavors": [' + b" " * 100],
            abort_after=50,
        ),
    )
    status, headers, body = await get(client, shim / "v2.1/flavors")
    assert status == 502
    assert json.loads(body)["computeFault"]["code"] == 502
    assert headers["content-type"] == "application/json; charset=UTF-8"
