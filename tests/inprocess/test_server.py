"""The worker's HTTP server: header-read bound (slow loris), Nova faults for malformed HTTP.

Raw sockets, because a real client cannot send a head slowly or malformed on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest
from pytest_aiohttp import AiohttpServer

from tests.fakes import RecordingUpstream, Reply
from tests.fakes.images import glance_image
from tests.fakes.logs import captured_logs
from tests.fakes.shim_server import ServedShim, local_settings, served_shim

BOUND = 0.5
GET_IMAGES = b"GET /v2.1/images HTTP/1.1\r\nHost: shim\r\nX-Auth-Token: tok-server-test\r\n\r\n"


@pytest.fixture
async def shim(aiohttp_server: AiohttpServer) -> AsyncIterator[ServedShim]:
    glance = RecordingUpstream(default=Reply.json({"images": [glance_image()]}))
    server = await aiohttp_server(glance.app)
    settings = local_settings(glance_url=server.make_url("/"), header_read_timeout=BOUND)
    async with served_shim(settings) as served:
        yield served


async def _connect(shim: ServedShim) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(shim.url.host, shim.url.port)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await asyncio.wait_for(reader.readexactly(length), 5)


async def _closed_after(reader: asyncio.StreamReader, started: float) -> float:
    try:
        data = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        data = b""
    assert data == b""
    return time.monotonic() - started


async def test_head_sent_byte_by_byte_is_cut_off_at_the_bound(shim: ServedShim) -> None:
    reader, writer = await _connect(shim)
    started = time.monotonic()

    async def trickle() -> None:
        for byte in GET_IMAGES:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)  # the whole head would take ~3.5 s

    sender = asyncio.create_task(trickle())
    try:
        elapsed = await _closed_after(reader, started)
    finally:
        sender.cancel()
        with pytest.raises((asyncio.CancelledError, ConnectionError)):
            await sender
        await _close(writer)
    assert BOUND <= elapsed < BOUND + 1.0


async def test_silent_connection_is_closed_at_the_bound(shim: ServedShim) -> None:
    reader, writer = await _connect(shim)
    elapsed = await _closed_after(reader, time.monotonic())
    await _close(writer)
    assert BOUND <= elapsed < BOUND + 1.0


async def test_slow_but_timely_head_and_idle_keep_alive_are_served(shim: ServedShim) -> None:
    reader, writer = await _connect(shim)
    try:
        half = len(GET_IMAGES) // 2
        writer.write(GET_IMAGES[:half])
        await asyncio.sleep(BOUND / 2)
        writer.write(GET_IMAGES[half:])
        head, _ = await _read_response(reader)
        assert head.startswith(b"HTTP/1.1 200 ")
        # Idle keep-alive time is not head time: a later request still works.
        await asyncio.sleep(BOUND * 2)
        writer.write(GET_IMAGES)
        head, _ = await _read_response(reader)
        assert head.startswith(b"HTTP/1.1 200 ")
        # A later head trickled too slowly is cut off as well.
        started = time.monotonic()
        writer.write(GET_IMAGES[:10])
        elapsed = await _closed_after(reader, started)
        assert BOUND <= elapsed < BOUND + 1.0
    finally:
        await _close(writer)


async def test_slow_request_body_is_not_head_time(aiohttp_server: AiohttpServer) -> None:
    # A body trickling slower than the head bound is not cut off (it is not a head).
    nova = RecordingUpstream(default=Reply(status=202))
    nova_server = await aiohttp_server(nova.app)
    glance = await aiohttp_server(RecordingUpstream().app)
    settings = local_settings(
        glance_url=glance.make_url("/"),
        nova_url=nova_server.make_url("/"),
        header_read_timeout=BOUND,
    )
    async with served_shim(settings) as shim:
        reader, writer = await _connect(shim)
        try:
            writer.write(
                b"POST /v2.1/servers HTTP/1.1\r\nHost: shim\r\nX-Auth-Token: t\r\n"
                b"Content-Length: 4\r\n\r\n"
            )
            for byte in b"body":
                await asyncio.sleep(BOUND / 2)
                writer.write(bytes([byte]))
            head, _ = await _read_response(reader)
            assert head.startswith(b"HTTP/1.1 202 ")
        finally:
            await _close(writer)
    assert nova.last.body == b"body"


@pytest.mark.parametrize(
    ("request_head", "status", "name", "message"),
    [
        (
            b"GET /v2.1/images?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "computeFault",
            "Request-URI Too Long",
        ),
        (
            b"GET /v2.1/images HTTP/1.1\r\nHost: x\r\nX-Auth-Token: " + b"t" * 9000 + b"\r\n\r\n",
            431,
            "computeFault",
            "Request Header Fields Too Large",
        ),
        (
            b"GET /v2.1/images HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % n for n in range(200))
            + b"\r\n",
            431,
            "computeFault",
            "Request Header Fields Too Large",
        ),
        (
            b"GET /v2.1/images HTTP/1.1\r\nBad Header\r\n\r\n",
            400,
            "badRequest",
            "Malformed request",
        ),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS?\r\n\r\n",
            400,
            "badRequest",
            "Malformed request",
        ),
    ],
)
async def test_malformed_http_gets_a_nova_fault(
    shim: ServedShim, request_head: bytes, status: int, name: str, message: str
) -> None:
    with captured_logs() as logs:
        reader, writer = await _connect(shim)
        try:
            writer.write(request_head)
            head, body = await _read_response(reader)
        finally:
            await _close(writer)
    assert head.split(b"\r\n")[0].split(b" ", 2)[1] == str(status).encode()
    assert b"Content-Type: application/json; charset=UTF-8" in head
    assert json.loads(body) == {name: {"code": status, "message": message}}
    (access,) = [e for e in logs.events() if e.get("logger") == "shim.access"]
    assert access["route"] == "malformed"
    assert access["status"] == status
    assert "tttttttt" not in logs.text  # the offending text is never logged
