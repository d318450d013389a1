"""Integration tests share ``make_shim`` (``tests.shim_fixtures``, registered globally),
``active_scratch_image``, and ``shim_over_fake`` for what the real Glance cannot produce."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import pytest
from pytest_aiohttp import AiohttpClient, AiohttpServer

from shim.app import create_app
from shim.settings import Settings
from tests.fakes import RecordingUpstream, Reply
from tests.integration.answers import Client
from tests.shim_fixtures import TEST_PAGE_SIZE, MakeShim, stack_settings
from tests.stack.fixtures import ScratchImages
from tests.stack.rest import JsonObject

__all__ = ["TEST_PAGE_SIZE", "MakeShim", "stack_settings"]

IMG: Final = "5b3a1c2d-0e4f-4a6b-8c9d-1e2f3a4b5c6d"
ShimOverFake = Callable[..., Awaitable[tuple[Client, RecordingUpstream]]]


async def active_scratch_image(
    scratch: ScratchImages, owner: str = "alice", **fields: Any
) -> JsonObject:
    """A scratch image of *owner*'s (purged after the test) with 1 KiB of data: active, sized;
    raw and bare unless *fields* say."""
    fields.setdefault("disk_format", "raw")
    fields.setdefault("container_format", "bare")
    return await asyncio.to_thread(scratch, owner, data=b"x" * 1024, **fields)


@pytest.fixture
def shim_over_fake(aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient) -> ShimOverFake:
    """``await shim_over_fake(record, (method, reply)..., **settings)``: a shim over a
    recording fake Glance whose ``/v2/images/{IMG}`` answers GET with *record* and each
    *method* with its *reply*; returns the shim's client and the fake."""

    async def make(
        record: Mapping[str, Any], *replies: tuple[str, Reply], **overrides: Any
    ) -> tuple[Client, RecordingUpstream]:
        fake = RecordingUpstream()
        fake.on(f"/v2/images/{IMG}", Reply.json(record), method="GET")
        for method, reply in replies:
            fake.on(f"/v2/images/{IMG}", reply, method=method)
        server = await aiohttp_server(fake.app)
        settings = Settings(
            glance_url=server.make_url("/"), metrics_listen=None, workers=1, **overrides
        )
        return await aiohttp_client(create_app(settings)), fake

    return make
