"""The shim served in-process exactly as a worker serves it (`shim.server.start`).

Unlike pytest-aiohttp's test server, this uses the production runner: the header-read
bound, Nova faults for malformed HTTP, the access logger and request metrics, and a
metrics-port app. Both ports are ephemeral.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from yarl import URL

from shim.server import Running, start
from shim.settings import Address, Settings

LOCAL = "127.0.0.1"
IMAGE_ID = "5a1e0c6e-2a6f-4b5e-9d36-3f0c2b7d1a11"


def glance_image(image_id: str = IMAGE_ID, name: str = "cirros") -> dict[str, Any]:
    """A Glance v2 image as Glance returns it (enough for both Nova views)."""
    return {
        "id": image_id,
        "name": name,
        "status": "active",
        "visibility": "public",
        "protected": False,
        "owner": "0c1c1d2b3e4f40b6a4b1e1c2d3e4f5a6",
        "min_disk": 0,
        "min_ram": 0,
        "size": 1024,
        "disk_format": "qcow2",
        "container_format": "bare",
        "checksum": None,
        "created_at": "2024-01-02T03:04:05Z",
        "updated_at": "2024-01-02T03:04:06Z",
        "tags": [],
        "os_hidden": False,
        "self": f"/v2/images/{image_id}",
        "file": f"/v2/images/{image_id}/file",
        "schema": "/v2/schemas/image",
    }


@dataclass(frozen=True, slots=True)
class ServedShim:
    running: Running
    url: URL
    metrics_url: URL


def local_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "listen": Address(LOCAL, 0),
        "metrics_listen": Address(LOCAL, 0),
        "workers": 1,
        "glance_retries": 1,
        "glance_timeout": 5.0,
        "shutdown_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def served_shim(settings: Settings) -> AsyncIterator[ServedShim]:
    running = await start(settings)
    try:
        metrics_port = running.metrics_port
        assert metrics_port is not None
        yield ServedShim(
            running,
            URL.build(scheme="http", host=LOCAL, port=running.api_port),
            URL.build(scheme="http", host=LOCAL, port=metrics_port),
        )
    finally:
        await running.stop()
