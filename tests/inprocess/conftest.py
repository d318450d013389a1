"""Shared fixtures of the in-process tests: a fake Glance, a recording upstream, a client
that reads answers as sent, and an event loop that must never block.

In-process tests run the shim in the test's own event loop, against stand-ins from
``tests/fakes`` (real aiohttp apps), never the real stack.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Final

import aiohttp
import pytest
from blockbuster import BlockBuster, blockbuster_ctx
from pytest_aiohttp import AiohttpServer
from yarl import URL

from tests.fakes import RecordingUpstream, Reply
from tests.fakes.images import IMAGE_ID, glance_image
from tests.fakes.serving import wire_client

TOKEN = "canaryTOK-glance-fixture-3b9c"
"""The token the fake Glance's ``broken`` answer echoes (no log may repeat it)."""

FakeGlance = tuple[RecordingUpstream, URL]


@pytest.fixture
async def glance(aiohttp_server: AiohttpServer) -> FakeGlance:
    """A recording Glance and its URL. It lists ``IMAGE_ID`` and a second image, shows and
    deletes ``IMAGE_ID``, has no image schema (404), and answers the ids ``missing`` (404),
    ``unauthorized`` (401), ``broken`` (500 echoing `TOKEN`), ``garbage`` (bad JSON) and
    ``slow`` (an image, after 2 s)."""
    fake = RecordingUpstream()
    image = glance_image()
    fake.on("/v2/images", Reply.json({"images": [image, glance_image("b" * 8, "two")]}))
    fake.on("/v2/schemas/image", Reply(status=404))
    fake.on(f"/v2/images/{IMAGE_ID}", Reply.json(image))
    fake.on(f"/v2/images/{IMAGE_ID}", Reply(status=204), method="DELETE")
    fake.on("/v2/images/missing", Reply.json({"message": "not found"}, status=404))
    fake.on(
        "/v2/images/unauthorized",
        Reply.json({"message": "bad token"}, 401, [("WWW-Authenticate", 'Keystone uri="k"')]),
    )
    fake.on("/v2/images/broken", Reply(status=500, body=f"echo {TOKEN}".encode()))
    fake.on("/v2/images/garbage", Reply(headers=[("Content-Type", "application/json")], body=b"{"))
    fake.on("/v2/images/slow", Reply.json(glance_image("slow"), delay=2.0))
    return fake, await fake.start(aiohttp_server)


@pytest.fixture
def fake() -> RecordingUpstream:
    """A recording upstream, to stand in for Nova or Glance (``upstream_url`` serves it)."""
    return RecordingUpstream()


@pytest.fixture
async def upstream_url(fake: RecordingUpstream, aiohttp_server: AiohttpServer) -> URL:
    return await fake.start(aiohttp_server)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that leaves the shim's answers as they were sent (no decompression, no cookies)."""
    async with wire_client() as session:
        yield session


# Blocking that happens once, at start-up, before a worker serves its first request (the
# tests start shims inside their event loop): settings that check their files, the metrics
# registry reading /proc; the traceback of an unexpected error, rendered for its log line;
# and, knowingly, the HTTPS listener's two stat() calls per handshake that notice rotated
# certificate files (shim/tls.py, ListenerCertificate).
_MAY_BLOCK: Final = (
    ("shim/settings.py", ("__post_init__",)),
    ("shim/metrics.py", ("_create",)),
    ("structlog/tracebacks.py", ("extract",)),
    ("shim/tls.py", ("_identity",)),
)


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """A blocking call (file, socket, sleep, lock) made from the shim's code while the event
    loop runs fails the test, as in aiohttp's own suite: the shim serves every request of a
    worker from one loop, so one blocked call stalls them all."""
    with blockbuster_ctx("shim") as guard:
        for function in guard.functions.values():
            for filename, names in _MAY_BLOCK:
                function.can_block_in(filename, names)
        yield guard
