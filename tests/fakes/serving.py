"""Serve an app the way production does, for tests that pytest-aiohttp cannot express.

pytest-aiohttp's ``aiohttp_server`` forces ``handler_cancellation=True``; the shim runs
with it off and with ``auto_decompress=False``. :func:`running` serves any app so, and
:func:`wire_client` reads its answers as they were sent.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL


@asynccontextmanager
async def running(
    app: web.Application,
    *,
    host: str = "127.0.0.1",
    tls: ssl.SSLContext | None = None,
    **runner_kwargs: Any,
) -> AsyncIterator[URL]:
    """Serve *app* on a free port like production (HTTPS with *tls*); yields its base URL."""
    options: dict[str, Any] = {"auto_decompress": False, "handler_cancellation": False}
    options.update(runner_kwargs)
    runner = web.AppRunner(app, **options)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0, ssl_context=tls)
        await site.start()
        port = runner.addresses[0][1]
        yield URL.build(scheme="https" if tls else "http", host=host, port=port)
    finally:
        await runner.cleanup()


def wire_client() -> aiohttp.ClientSession:
    """A client session that leaves answers as they were sent: no decompression, and no
    cookie jar (no cookie is kept or sent back)."""
    return aiohttp.ClientSession(auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())
