"""Passthrough fidelity and failure behaviour against a recording upstream (docs/proxying.md).

The shim side is the real ``proxy`` handler served like production (``auto_decompress``
off, no handler cancellation unless a test asks); the upstream is a real aiohttp app from
``tests.fakes`` that records each request byte for byte. Raw sockets are used wherever
aiohttp's own client would add, fix or hide something on the wire. What the stack's real
Nova can produce (bodies and methods, Expect: 100-continue, 204s, pipelining, encoded
paths) is tested against it in ``test_passthrough_nova.py``; this module keeps what only a
recording or misbehaving upstream shows.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from yarl import URL

from shim.app import create_app
from shim.keys import NOVA_SESSION
from shim.passthrough import (
    MSG_BAD_HEADER,
    MSG_BUSY,
    MSG_CONNECT,
    MSG_READ_TIMEOUT,
)
from shim.settings import Settings
from tests.fakes import RecordingUpstream, Reply, acquired_connections, refused_url
from tests.fakes.net import connection, raw_exchange
from tests.fakes.process import served
from tests.fakes.serving import running

TOKEN = "gAAAAAB-secret-token-value"
FAULT_TYPE = "application/json; charset=UTF-8"


@dataclass(frozen=True, slots=True)
class Shim:
    url: URL
    app: web.Application
    settings: Settings

    @property
    def connector(self) -> aiohttp.BaseConnector:
        connector = self.app[NOVA_SESSION].connector
        assert connector is not None
        return connector


StartShim = Callable[..., Awaitable[Shim]]


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exit_stack:
        yield exit_stack


@pytest.fixture
def start_shim(stack: AsyncExitStack, upstream_url: URL) -> StartShim:
    async def start(
        *, nova_url: URL | None = None, handler_cancellation: bool = False, **changes: Any
    ) -> Shim:
        settings = Settings(
            glance_url=URL("http://glance.invalid:9292"),
            nova_url=nova_url or upstream_url,
        ).replace(**changes)
        app = create_app(settings)
        url = await stack.enter_async_context(
            running(app, handler_cancellation=handler_cancellation)
        )
        return Shim(url, app, settings)

    return start


@pytest.fixture
async def shim(start_shim: StartShim) -> Shim:
    return await start_shim()


def parse_responses(data: bytes, head_only: tuple[bool, ...] = ()) -> list[RawResponse]:
    """Split pipelined HTTP/1.1 responses (Content-Length, chunked, or none for HEAD/1xx)."""
    responses: list[RawResponse] = []
    while data:
        head, _, data = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines)]
        names = {k.lower(): v for k, v in headers}
        if 100 <= status < 200:
            continue
        index = len(responses)
        body = b""
        if (index < len(head_only) and head_only[index]) or status in (204, 304):
            pass
        elif names.get("transfer-encoding") == "chunked":
            while True:
                size_line, _, data = data.partition(b"\r\n")
                size = int(size_line, 16)
                body, data = body + data[:size], data[size + 2 :]
                if size == 0:
                    break
        elif "content-length" in names:
            size = int(names["content-length"])
            body, data = data[:size], data[size:]
        else:
            body, data = data, b""
        responses.append(RawResponse(status, headers, body))
    return responses


def request_bytes(
    method: str, target: str, headers: Sequence[tuple[str, str]] = (), body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: shim.example:8774", *map(": ".join, headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def one(url: URL, request: bytes) -> RawResponse:
    [response] = parse_responses(await raw_exchange(url, request))
    return response


def fault(response_body: bytes) -> tuple[str, int, str]:
    document = json.loads(response_body)
    [(name, detail)] = document.items()
    return name, detail["code"], detail["message"]


# --- request fidelity ------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/v2.1/servers/a%2Fb%28c%29?name=x+y&plus=%2B&space=%20&empty=",
        "//v2.1//servers?x=1",
        "/v2.1/os-keypairs/caf%C3%A9?q=%28%29&q=2",
        "/v2.1/servers/..name?marker=a%2Fb",
    ],
)
async def test_path_and_query_reach_upstream_byte_exact(
    shim: Shim, fake: RecordingUpstream, target: str
) -> None:
    close = [("Connection", "close")]
    response = await one(shim.url, request_bytes("GET", target, close))
    assert response.status == 200
    path, _, query = target.partition("?")
    assert (fake.last.raw_path, fake.last.query_string) == (path, query)


async def test_upstream_path_prefix_kept(
    start_shim: StartShim, fake: RecordingUpstream, upstream_url: URL
) -> None:
    shim = await start_shim(nova_url=upstream_url.with_path("/compute/"))
    await one(shim.url, request_bytes("GET", "/v2.1/a%2Fb?x=%28", [("Connection", "close")]))
    assert (fake.last.raw_path, fake.last.query_string) == ("/compute/v2.1/a%2Fb", "x=%28")


@pytest.mark.parametrize("target", ["/v2.1/../identity", "/v2.1/%2E%2e/x", "/v2.1/./x", "/.."])
async def test_dot_segments_refused_without_calling_upstream(
    shim: Shim, fake: RecordingUpstream, target: str
) -> None:
    response = await one(shim.url, request_bytes("GET", target, [("Connection", "close")]))
    assert response.status == 404
    assert fault(response.body) == ("itemNotFound", 404, "The resource could not be found.")
    assert fake.requests == []


async def test_hop_by_hop_request_headers_removed(shim: Shim, fake: RecordingUpstream) -> None:
    headers = [
        ("Connection", "close, X-Hop"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers"),
        ("Trailer", "X-Sum"),
        ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic c2VjcmV0"),
        ("X-Hop", "listed in Connection"),
        ("X-Auth-Token", TOKEN),
        ("Via", "1.0 edge"),
    ]
    response = await one(shim.url, request_bytes("GET", "/v2.1/flavors", headers))
    assert response.status == 200
    names = fake.last.header_names
    assert not names & {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "x-hop",
        "expect",
    }
    nova_url = shim.settings.nova_url
    assert nova_url is not None
    assert fake.last.header("Host") == f"{nova_url.host}:{nova_url.port}"
    assert fake.last.header("X-Auth-Token") == TOKEN
    assert fake.last.header_all("Via") == ["1.0 edge", "1.1 nova-image-shim"]


async def test_no_headers_added_by_aiohttp(shim: Shim, fake: RecordingUpstream) -> None:
    request = request_bytes("POST", "/v2.1/x", [("Content-Length", "2"), ("Connection", "close")])
    await one(shim.url, request + b"{}")
    assert fake.last.header_names == {
        "host",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "via",
        "x-openstack-request-id",  # the shim's own id, so Nova's log joins the shim's
    }
    assert fake.last.body == b"{}"


async def test_repeated_headers_both_ways(shim: Shim, fake: RecordingUpstream) -> None:
    fake.on(
        "/v2.1/multi",
        Reply(
            headers=[
                ("Set-Cookie", "a=1"),
                ("X-Multi", "one"),
                ("Set-Cookie", "b=2"),
                ("X-Multi", "two"),
            ],
            body=b"{}",
        ),
    )
    headers = [
        ("X-Multi", "first"),
        ("Accept", "application/json"),
        ("x-multi", "second"),
        ("Accept", "text/plain"),
        ("Connection", "close"),
    ]
    response = await one(shim.url, request_bytes("GET", "/v2.1/multi", headers))
    assert fake.last.header_all("X-Multi") == ["first", "second"]
    assert fake.last.header_all("Accept") == ["application/json", "text/plain"]
    assert response.header_all("Set-Cookie") == ["a=1", "b=2"]
    assert response.header_all("X-Multi") == ["one", "two"]


async def test_hop_by_hop_response_headers_removed(shim: Shim, fake: RecordingUpstream) -> None:
    fake.on(
        "/v2.1/hop",
        Reply(
            headers=[
                ("Connection", "X-Internal"),
                ("X-Internal", "secret"),
                ("Keep-Alive", "timeout=1"),
                ("Proxy-Authenticate", "Basic"),
                ("Trailer", "X-Sum"),
                ("X-Kept", "yes"),
            ],
            chunks=[b"abc"],
        ),
    )
    response = await one(shim.url, request_bytes("GET", "/v2.1/hop", [("Connection", "close")]))
    names = {name.lower() for name, _ in response.headers}
    assert not names & {"x-internal", "keep-alive", "proxy-authenticate", "trailer"}
    assert response.header("X-Kept") == "yes"
    assert response.header("Via") == "1.1 nova-image-shim"
    assert response.body == b"abc"


@pytest.mark.parametrize(
    ("trusted_proxies", "sent", "forwarded"),
    [
        pytest.param(
            frozenset(),
            {
                "X-Forwarded-For": "6.6.6.6",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "evil.example",
                "Forwarded": "for=6.6.6.6;host=evil.example",
            },
            {
                "X-Forwarded-For": ["127.0.0.1"],
                "X-Forwarded-Proto": ["http"],
                "X-Forwarded-Host": ["shim.example:8774"],
                "Forwarded": [],
            },
            id="untrusted peer: replaced",
        ),
        pytest.param(
            frozenset({"127.0.0.0/8"}),
            {
                "X-Forwarded-For": "203.0.113.5",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "api.example",
            },
            {
                "X-Forwarded-For": ["203.0.113.5, 127.0.0.1"],
                "X-Forwarded-Proto": ["https"],
                "X-Forwarded-Host": ["api.example"],
            },
            id="trusted peer: extended",
        ),
    ],
)
async def test_forwarding_headers(
    start_shim: StartShim,
    fake: RecordingUpstream,
    trusted_proxies: frozenset[str],
    sent: dict[str, str],
    forwarded: dict[str, list[str]],
) -> None:
    shim = await start_shim(trusted_proxies=trusted_proxies)
    headers = [*sent.items(), ("Connection", "close")]
    await one(shim.url, request_bytes("GET", "/v2.1/servers", headers))
    assert {name: fake.last.header_all(name) for name in forwarded} == forwarded


async def test_non_utf8_header_refused(shim: Shim, fake: RecordingUpstream) -> None:
    request = request_bytes("GET", "/v2.1/x", [("Connection", "close")])
    request = request.replace(b"Connection", b"X-Latin: caf\xe9\r\nConnection")
    response = await one(shim.url, request)
    assert response.status == 400
    assert fault(response.body) == ("badRequest", 400, MSG_BAD_HEADER)
    assert fake.requests == []


# --- bodies: encodings, chunking, streaming ---------------------------------------------


async def test_chunked_upload_byte_exact(
    shim: Shim, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    pieces = [bytes([n]) * (1000 + n) for n in range(20)]

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async with client.put(shim.url / "v2.1/upload", data=body()) as response:
        assert response.status == 200
    assert fake.last.body == b"".join(pieces)
    assert fake.last.header("Transfer-Encoding") == "chunked"
    assert fake.last.header("Content-Length") is None


async def test_gzip_upload_with_content_length_byte_exact(
    shim: Shim, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    compressed = gzip.compress(b'{"metadata": {"k": "v"}}' * 5000, mtime=0)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    async with client.put(shim.url / "v2.1/gz", data=compressed, headers=headers) as response:
        assert response.status == 200
    assert fake.last.body == compressed
    assert fake.last.header("Content-Length") == str(len(compressed))
    assert fake.last.header("Content-Encoding") == "gzip"


async def test_gzip_response_passed_compressed(
    shim: Shim, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    document = json.dumps({"servers": [{"id": str(n)} for n in range(2000)]}).encode()
    fake.on("/v2.1/servers", Reply(body=document, gzip=True))
    compressed = gzip.compress(document, mtime=0)
    headers = {"Accept-Encoding": "gzip"}
    async with client.get(shim.url / "v2.1/servers", headers=headers) as response:
        raw = await response.read()
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Length"] == str(len(compressed))
    assert raw == compressed
    assert gzip.decompress(raw) == document
    assert fake.last.header("Accept-Encoding") == "gzip"


async def test_identity_response_when_client_asks_nothing(
    shim: Shim, fake: RecordingUpstream
) -> None:
    fake.on("/v2.1/plain", Reply(body=b"plain"))
    response = await one(shim.url, request_bytes("GET", "/v2.1/plain", [("Connection", "close")]))
    assert fake.last.header("Accept-Encoding") is None
    assert response.header("Content-Encoding") is None
    assert response.body == b"plain"


async def test_chunked_response_streams_without_buffering(
    shim: Shim, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    fake.on("/v2.1/stream", Reply(chunks=[b"a" * 10, b"b" * 20, b"c" * 30], chunk_delay=0.4))
    started = time.monotonic()
    async with client.get(shim.url / "v2.1/stream") as response:
        assert response.headers["Transfer-Encoding"] == "chunked"
        first = await response.content.readany()
        first_at = time.monotonic() - started
        rest = await response.read()
    total = time.monotonic() - started
    assert first == b"a" * 10
    assert first_at < total - 0.6
    assert first + rest == b"a" * 10 + b"b" * 20 + b"c" * 30


async def test_slow_trickle_not_cut_by_a_total_timeout(
    start_shim: StartShim, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    shim = await start_shim(nova_read_timeout=1.0)
    fake.on("/v2.1/slow", Reply(chunks=[b"x" * 100] * 10, chunk_delay=0.3))
    started = time.monotonic()
    async with client.get(shim.url / "v2.1/slow") as response:
        assert response.status == 200
        assert await response.read() == b"x" * 1000
    assert time.monotonic() - started >= 2.9


async def test_slow_trickle_upload_not_cut(
    start_shim: StartShim, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    shim = await start_shim(nova_read_timeout=1.0)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            await asyncio.sleep(0.3)
            yield b"u" * 100

    async with client.put(shim.url / "v2.1/slow-up", data=body()) as response:
        assert response.status == 200
    assert fake.last.body == b"u" * 1000


async def test_redirect_relayed_not_followed(
    shim: Shim, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    fake.on("/v2.1/moved", Reply(status=302, headers=[("Location", "http://other.invalid/x")]))
    async with client.get(shim.url / "v2.1/moved", allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == "http://other.invalid/x"
    assert len(fake.requests) == 1


# --- HEAD, 204, 304, Expect ---------------------------------------------------------------


async def test_head_204_304_keep_the_connection_usable(shim: Shim, fake: RecordingUpstream) -> None:
    fake.on("/v2.1/h", Reply(headers=[("Content-Length", "1234"), ("X-Kept", "h")]))
    fake.on("/v2.1/none", Reply(status=204, headers=[("X-Kept", "204")]))
    fake.on("/v2.1/same", Reply(status=304, headers=[("ETag", '"v1"')]))
    fake.on("/v2.1/after", Reply(body=b"after"))
    pipelined = (
        request_bytes("HEAD", "/v2.1/h")
        + request_bytes("DELETE", "/v2.1/none")
        + request_bytes("GET", "/v2.1/same", [("If-None-Match", '"v1"')])
        + request_bytes("GET", "/v2.1/after", [("Connection", "close")])
    )
    head, no_content, not_modified, after = parse_responses(
        await raw_exchange(shim.url, pipelined), head_only=(True,)
    )
    assert (head.status, head.header("Content-Length"), head.header("X-Kept")) == (
        200,
        "1234",
        "h",
    )
    assert (no_content.status, no_content.header("X-Kept"), no_content.body) == (204, "204", b"")
    assert no_content.header("Content-Length") is None
    assert no_content.header("Transfer-Encoding") is None
    assert (not_modified.status, not_modified.header("ETag")) == (304, '"v1"')
    assert (after.status, after.body) == (200, b"after")
    assert [request.method for request in fake.requests] == ["HEAD", "DELETE", "GET", "GET"]


async def test_expect_100_continue(shim: Shim, fake: RecordingUpstream) -> None:
    async with connection(shim.url) as (reader, writer):
        writer.write(
            request_bytes(
                "PUT",
                "/v2.1/e",
                [("Content-Length", "5"), ("Expect", "100-continue"), ("Connection", "close")],
            )
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(b"hello")
        [response] = parse_responses(await asyncio.wait_for(reader.read(), 5))
    assert response.status == 200
    assert fake.last.body == b"hello"
    assert "expect" not in fake.last.header_names


# --- Location ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        ("https://api.example/legacy", "https://api.example/legacy/v2.1/servers/1"),
        (None, "http://shim.example:8774/v2.1/servers/1"),
    ],
)
async def test_location_rewrite(
    start_shim: StartShim,
    fake: RecordingUpstream,
    upstream_url: URL,
    public_url: str | None,
    expected: str,
) -> None:
    nova_url = upstream_url.with_path("/compute")
    shim = await start_shim(
        nova_url=nova_url,
        public_url=URL(public_url) if public_url else None,
    )
    upstream_location = f"{nova_url}/v2.1/servers/1"
    fake.on("/compute/v2.1/servers", Reply(status=202, headers=[("Location", upstream_location)]))
    response = await one(
        shim.url,
        request_bytes("POST", "/v2.1/servers", [("Content-Length", "0"), ("Connection", "close")]),
    )
    assert response.status == 202
    assert response.header("Location") == expected


# --- cookies ------------------------------------------------------------------------------


async def test_set_cookie_passed_back_but_never_replayed(
    start_shim: StartShim, fake: RecordingUpstream, upstream_url: URL
) -> None:
    # A hostname upstream: the default jar refuses IP hosts and would hide the leak.
    shim = await start_shim(nova_url=upstream_url.with_host("localhost"))
    fake.on("/v2.1/login", Reply(headers=[("Set-Cookie", "session=alice-secret; Path=/")]))
    alice = await one(shim.url, request_bytes("GET", "/v2.1/login", [("Connection", "close")]))
    assert alice.header("Set-Cookie") == "session=alice-secret; Path=/"
    await one(shim.url, request_bytes("GET", "/v2.1/servers", [("Connection", "close")]))
    assert fake.last.raw_path == "/v2.1/servers"
    assert fake.last.header("Cookie") is None


# --- upstream failures --------------------------------------------------------------------


async def test_connection_refused_gives_502_fault_without_token(
    start_shim: StartShim, client: aiohttp.ClientSession
) -> None:
    shim = await start_shim(nova_url=refused_url())
    with structlog.testing.capture_logs() as logs:
        async with client.get(
            shim.url / "v2.1/servers", headers={"X-Auth-Token": TOKEN}
        ) as response:
            body = await response.read()
    assert response.status == 502
    assert response.headers["Content-Type"] == FAULT_TYPE
    assert fault(body) == ("computeFault", 502, MSG_CONNECT)
    assert TOKEN not in body.decode()
    assert logs
    assert TOKEN not in repr(logs)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(abort_before_response=True),
        Reply(abort_before_response=True, abort_mode="close"),
        Reply(raw=b"NOT HTTP AT ALL\r\n\r\n"),
    ],
    ids=["reset", "close", "garbage"],
)
async def test_upstream_broken_before_headers_gives_502(
    shim: Shim, fake: RecordingUpstream, client: aiohttp.ClientSession, reply: Reply
) -> None:
    fake.on("/v2.1/broken", reply)
    async with client.get(shim.url / "v2.1/broken") as response:
        assert response.status == 502
        assert response.headers["Content-Type"] == FAULT_TYPE
        name, code, _ = fault(await response.read())
    assert (name, code) == ("computeFault", 502)


async def test_stall_before_headers_gives_504(
    start_shim: StartShim, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    shim = await start_shim(nova_read_timeout=0.5)
    fake.on("/v2.1/stall", Reply(delay=5))
    started = time.monotonic()
    async with client.get(shim.url / "v2.1/stall") as response:
        body = await response.read()
    assert response.status == 504
    assert fault(body) == ("computeFault", 504, MSG_READ_TIMEOUT)
    assert time.monotonic() - started < 0.5 * 1.1 + 0.5


@pytest.mark.parametrize(
    "reply",
    [
        Reply(chunks=[b"x" * 1000] * 10, abort_after=3000),
        Reply(chunks=[b"x" * 1000] * 10, abort_after=3000, headers=[("Content-Length", "10000")]),
        Reply(chunks=[b"x" * 1000] * 10, abort_after=3000, abort_mode="close"),
        # Headers promise more than ever comes, then silence past sock_read.
        Reply(chunks=[b"x" * 1000], headers=[("Content-Length", "10000")]),
        Reply(chunks=[b"x" * 1000, b"y"], chunk_delay=[0, 5]),
    ],
    ids=["reset-chunked", "reset-length", "close-chunked", "short-length", "stall"],
)
async def test_upstream_failure_mid_body_aborts_the_client(
    start_shim: StartShim, fake: RecordingUpstream, client: aiohttp.ClientSession, reply: Reply
) -> None:
    shim = await start_shim(nova_read_timeout=0.5)
    fake.on("/v2.1/mid", reply)
    async with client.get(shim.url / "v2.1/mid") as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_upstream_failure_mid_body_aborts_http10_close_delimited(
    shim: Shim, fake: RecordingUpstream
) -> None:
    # HTTP/1.0 has no chunking: the body ends at connection close, so only a reset can tell
    # the client that it is truncated.
    fake.on("/v2.1/mid", Reply(chunks=[b"x" * 1000] * 10, abort_after=3000))
    request = b"GET /v2.1/mid HTTP/1.0\r\nHost: shim\r\n\r\n"
    with pytest.raises(ConnectionResetError):
        await raw_exchange(shim.url, request)


async def test_stale_keepalive_put_gives_502_not_a_truncated_body(
    start_shim: StartShim, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    shim = await start_shim(pool_size=1)
    async with client.get(shim.url / "v2.1/warm") as response:
        assert response.status == 200
    # The pooled connection dies as the PUT arrives; a retry would be answered normally.
    fake.on("/v2.1/image", Reply(read_body=False, abort_before_response=True), Reply())
    sent = [b"a" * 65536, b"b" * 65536, b"c" * 65536]

    async def body() -> AsyncIterator[bytes]:
        for piece in sent:
            yield piece
            await asyncio.sleep(0.2)

    async with client.put(shim.url / "v2.1/image", data=body()) as response:
        assert response.status == 502
        assert fault(await response.read())[:2] == ("computeFault", 502)
    [put] = [request for request in fake.requests if request.method == "PUT"]
    assert put.peer == fake.requests[0].peer  # it really went out on the pooled connection
    # aiohttp (>= 3.14.4) must not have retried with the part of the stream that was left.
    assert not put.body_complete


async def test_pool_exhaustion_gives_bounded_503(
    start_shim: StartShim, fake: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    shim = await start_shim(pool_size=1, connect_timeout=0.5)
    fake.on("/v2.1/hold", Reply(chunks=[b"x"] * 100, chunk_delay=0.1))
    async with client.get(shim.url / "v2.1/hold") as held:
        await held.content.readany()
        started = time.monotonic()
        async with client.get(shim.url / "v2.1/other") as response:
            body = await response.read()
        elapsed = time.monotonic() - started
    assert response.status == 503
    assert response.headers["Retry-After"] == str(shim.settings.retry_after)
    assert fault(body) == ("serviceUnavailable", 503, MSG_BUSY)
    assert 0.45 < elapsed < 0.5 * 1.1 + 0.3
    async with client.get(shim.url / "v2.1/other") as response:
        assert response.status == 200


# --- client going away --------------------------------------------------------------------


@pytest.mark.parametrize("handler_cancellation", [False, True])
async def test_client_disconnect_mid_download_releases_the_upstream(
    start_shim: StartShim,
    fake: RecordingUpstream,
    client: aiohttp.ClientSession,
    handler_cancellation: bool,
) -> None:
    shim = await start_shim(pool_size=1, handler_cancellation=handler_cancellation)
    fake.on("/v2.1/big", Reply(chunks=[b"z" * 65536], repeat=100_000, chunk_delay=0.005))
    assert shim.url.host is not None
    assert shim.url.port is not None
    reader, writer = await asyncio.open_connection(shim.url.host, shim.url.port)
    writer.write(request_bytes("GET", "/v2.1/big"))
    await reader.readexactly(256 * 1024)
    writer.transport.abort()
    await writer.wait_closed()
    async with asyncio.timeout(5):
        while acquired_connections(shim.connector) or not fake.aborted_by_peer:
            await asyncio.sleep(0.02)
    # With a pool of one, a new request only gets through if the slot came back.
    async with client.get(shim.url / "v2.1/next", timeout=aiohttp.ClientTimeout(3)) as response:
        assert response.status == 200
    assert acquired_connections(shim.connector) == 0


# --- large bodies, flat memory --------------------------------------------------------------

BLOCK = bytes(range(256)) * 256  # 64 KiB
BLOCKS = 3200  # 200 MiB
MEMORY_GROWTH_LIMIT = 16 * 1024 * 1024  # measured: ~2 MiB for 400 MiB relayed


async def test_large_bodies_stream_with_flat_memory(aiohttp_server: AiohttpServer) -> None:
    fake = RecordingUpstream(max_recorded_body=0)
    total = len(BLOCK) * BLOCKS
    fake.on(
        "/v2.1/big",
        Reply(chunks=[BLOCK], repeat=BLOCKS, headers=[("Content-Length", str(total))]),
        method="GET",
    )
    env = {
        "SHIM_NOVA_URL": str(await fake.start(aiohttp_server)),
        "SHIM_GLANCE_URL": "http://glance.invalid:9292",
        "SHIM_NOVA_READ_TIMEOUT": "30",
    }
    started = time.monotonic()
    async with (
        served("shim.app:create_app", env) as child,
        aiohttp.ClientSession(auto_decompress=False) as client,
    ):
        async with client.get(child.url / "v2.1/warm") as response:
            assert response.status == 200
        await child.reset_peak()
        baseline = (await child.memory()).rss

        sent = hashlib.sha256()

        async def upload() -> AsyncIterator[bytes]:
            for _ in range(BLOCKS):
                sent.update(BLOCK)
                yield BLOCK

        async with client.put(child.url / "v2.1/big", data=upload()) as response:
            assert response.status == 200
        assert fake.last.body_size == total
        assert fake.last.body_sha256 == sent.hexdigest()

        received = hashlib.sha256()
        size = 0
        async with client.get(child.url / "v2.1/big") as response:
            assert response.headers["Content-Length"] == str(total)
            async for chunk in response.content.iter_chunked(len(BLOCK)):
                received.update(chunk)
                size += len(chunk)
        assert size == total
        assert received.hexdigest() == sent.hexdigest()  # the same 200 MiB went up
        peak = (await child.memory()).hwm
    assert peak - baseline < MEMORY_GROWTH_LIMIT, (peak - baseline) / 2**20
    assert time.monotonic() - started < 20
