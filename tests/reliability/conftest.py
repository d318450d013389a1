"""Fixtures of the reliability tests."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient, AiohttpServer

from shim.app import create_app
from shim.settings import Settings
from tests.fakes import RecordingUpstream, Reply
from tests.fakes.images import SCHEMA, page
from tests.reliability.support import IMAGE, IMAGE_ID, Client, ShimOverFakes


@pytest.fixture
def shim_over_fakes(aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient) -> ShimOverFakes:
    """Starts a shim in the test's event loop (its keyword arguments change the settings)
    in front of a recording Glance, which knows `IMAGE`, lists one page and answers 404 to
    anything else, and a recording Nova that answers an empty server list; returns the
    client and both fakes."""

    async def start(**overrides: Any) -> tuple[Client, RecordingUpstream, RecordingUpstream]:
        glance, nova = RecordingUpstream(), RecordingUpstream()
        glance_url = await glance.start(aiohttp_server)
        nova_url = await nova.start(aiohttp_server)
        glance.on("/v2/schemas/image", Reply.json(SCHEMA))
        glance.default = Reply.json({"message": "not found"}, status=404)
        glance.on("/v2/images", page(0, 2, full=False))
        glance.on(f"/v2/images/{IMAGE_ID}", Reply.json(IMAGE))
        nova.default = Reply.json({"servers": []})
        values: dict[str, Any] = {
            "glance_url": glance_url,
            "nova_url": nova_url,
            "metrics_listen": None,
            "glance_page_size": 2,
            "glance_retries": 0,
            "workers": 1,
        }
        values.update(overrides)
        client = await aiohttp_client(create_app(Settings(**values)))
        return client, glance, nova

    return start
