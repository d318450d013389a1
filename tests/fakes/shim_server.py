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
