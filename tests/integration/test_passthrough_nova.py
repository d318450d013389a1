"""Passthrough against the stack's real Nova: what a real compute API can show.

The shim is served like production (``tests.fakes.serving.running``) in gateway mode with
``SHIM_NOVA_URL`` at the stack's Nova. These cases replace recording-fake cases wherever
Nova itself can produce them (request bodies and methods, Expect: 100-continue, repeated
response headers, 204 answers, pipelining, encoded path segments). What Nova cannot
produce — resets, stalls, byte-exact bodies, huge uploads, slow clients, cookies — stays
with the recording upstream in ``tests/inprocess/test_passthrough.py``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from shim.app import create_app
from tests.fakes.net import connection
from tests.fakes.serving import running
from tests.shim_fixtures import stack_settings
from tests.stack.info import StackInfo

pytestmark = pytest.mark.integration

MICROVERSION_2_2 = {"OpenStack-API-Version": "compute 2.2"}


@pytest.fixture
async def shim(real_stack: StackInfo) -> AsyncIterator[URL]:
    settings = stack_settings(real_stack, nova_url=URL(real_stack.nova_url))
    async with running(create_app(settings)) as url:
        yield url


@pytest.fixture
async def client(shim: URL) -> AsyncIterator[aiohttp.ClientSession]:
    """A caller of the shim (relative URLs go to it) that leaves bodies encoded and keeps no
    cookies, so that what it reads is what the shim sent."""
    cookies = aiohttp.DummyCookieJar()
    async with aiohttp.ClientSession(shim, auto_decompress=False, cookie_jar=cookies) as session:
        yield session


def keypair_name() -> str:
    return f"kp-{uuid.uuid4().hex[:10]}"


async def raw(
    url: URL, data: bytes, heads: tuple[int, ...] = ()
) -> list[tuple[int, dict[str, list[str]], bytes]]:
    """Send raw request bytes (pipelined); parse every answer (Content-Length framed; the
    answers at the indexes `heads` (HEAD requests) and 204s have no body)."""
    async with connection(url) as (reader, writer):
        writer.write(data)
        await writer.drain()
        answers: list[tuple[int, dict[str, list[str]], bytes]] = []
        while True:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            status_line, *lines = head.decode("latin-1").split("\r\n")
            headers: dict[str, list[str]] = {}
            for line in filter(None, lines):
                name, _, value = line.partition(":")
                headers.setdefault(name.lower(), []).append(value.strip())
            status = int(status_line.split()[1])
            length = int(headers.get("content-length", ["0"])[0])
            no_body = status == 204 or len(answers) in heads
            body = b"" if no_body else await reader.readexactly(length)
            answers.append((status, headers, body))
            if headers.get("connection") == ["close"] or len(answers) == data.count(b" HTTP/1.1"):
                return answers


def request_bytes(method: str, target: str, token: str, *extra: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: shim.example:8774", f"X-Auth-Token: {token}",
             "Accept: application/json", *extra]  # fmt: skip
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def test_post_body_reaches_nova_and_its_answer_comes_back(
    client: aiohttp.ClientSession, real_stack: StackInfo
) -> None:
    name, token = keypair_name(), real_stack.token("bob")
    headers = {"X-Auth-Token": token, "Content-Type": "application/json"}
    body = json.dumps({"keypair": {"name": name}}).encode()
    async with client.post("v2.1/os-keypairs", data=body, headers=headers) as resp:
        created = await resp.json()
        assert resp.status == 200
        assert resp.headers.getall("Vary") == [
            "OpenStack-API-Version",
            "X-OpenStack-Nova-API-Version",
        ]
    assert created["keypair"]["name"] == name
    assert created["keypair"]["private_key"].startswith("-----BEGIN")
    async with client.get(f"v2.1/os-keypairs/{name}", headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["keypair"]["public_key"] == created["keypair"]["public_key"]
    async with client.delete(
        f"v2.1/os-keypairs/{name}", headers={**headers, **MICROVERSION_2_2}
    ) as resp:
        assert resp.status == 204
        assert await resp.read() == b""
        assert resp.headers["OpenStack-API-Version"] == "compute 2.2"


async def test_chunked_upload_reaches_nova_whole(
    client: aiohttp.ClientSession, real_stack: StackInfo
) -> None:
    name, token = keypair_name(), real_stack.token("bob")
    document = json.dumps({"keypair": {"name": name}}).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(document), 7):
            yield document[start : start + 7]

    headers = {"X-Auth-Token": token, "Content-Type": "application/json"}
    async with client.post("v2.1/os-keypairs", data=pieces(), headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["keypair"]["name"] == name
    async with client.delete(f"v2.1/os-keypairs/{name}", headers=headers) as resp:
        assert resp.status == 202


async def test_expect_100_continue_reaches_nova(
    client: aiohttp.ClientSession, real_stack: StackInfo
) -> None:
    name, token = keypair_name(), real_stack.token("bob")
    body = json.dumps({"keypair": {"name": name}}).encode()
    headers = {"X-Auth-Token": token, "Content-Type": "application/json"}
    async with client.post("v2.1/os-keypairs", data=body, headers=headers, expect100=True) as resp:
        assert resp.status == 200
        assert (await resp.json())["keypair"]["name"] == name
    async with client.delete(f"v2.1/os-keypairs/{name}", headers=headers) as resp:
        assert resp.status == 202


async def test_head_204_and_a_fault_keep_the_connection_usable(
    shim: URL, real_stack: StackInfo
) -> None:
    """Pipelined: Nova's bodiless answers (a HEAD 404 with Content-Length: 0, a 204) must
    not desynchronise the client connection."""
    name, token = keypair_name(), real_stack.token("bob")
    body = json.dumps({"keypair": {"name": name}}).encode()
    data = (
        request_bytes("POST", "/v2.1/os-keypairs", token, body=body)
        + request_bytes("HEAD", "/v2.1/flavors", token)
        + request_bytes(
            "DELETE", f"/v2.1/os-keypairs/{name}", token, "OpenStack-API-Version: compute 2.2"
        )
        + request_bytes("GET", f"/v2.1/os-keypairs/{name}", token, "Connection: close")
    )
    created, head, deleted, gone = await raw(shim, data, heads=(1,))
    assert created[0] == 200
    assert json.loads(created[2])["keypair"]["name"] == name
    assert (head[0], head[1]["content-length"]) == (404, ["0"])
    assert (deleted[0], deleted[2]) == (204, b"")
    assert gone[0] == 404
    assert json.loads(gone[2])["itemNotFound"]["code"] == 404


async def test_encoded_path_reaches_nova_as_sent(
    shim: URL, client: aiohttp.ClientSession, real_stack: StackInfo
) -> None:
    """Percent-encoded UTF-8, a space and an encoded ``%`` reach Nova untouched: the answer
    through the shim is the one Nova gives directly (whose message shows how Nova itself
    decodes the segment: UTF-8 bytes read as Latin-1, ``%2528`` once)."""
    headers = {"X-Auth-Token": real_stack.token("bob")}
    target = "/v2.1/os-keypairs/caf%C3%A9%20%2528x%2529"
    answers = []
    for base in (str(shim), real_stack.nova_url):
        async with client.get(URL(base + target, encoded=True), headers=headers) as resp:
            answers.append((resp.status, (await resp.json())["itemNotFound"]["message"]))
    assert answers[0] == answers[1]
    assert answers[0][0] == 404
    assert "%28x%29 not found" in answers[0][1]


async def test_novas_request_id_headers_come_back(
    client: aiohttp.ClientSession, real_stack: StackInfo
) -> None:
    headers = {"X-Auth-Token": real_stack.token("bob")}
    async with client.get("v2.1/flavors", headers=headers) as resp:
        assert resp.status == 200
        ids = resp.headers.getall("x-openstack-request-id")
        assert ids == resp.headers.getall("x-compute-request-id")
        assert len(ids) == 1
        assert ids[0].startswith("req-")
