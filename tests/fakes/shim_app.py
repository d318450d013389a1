"""The passthrough wired into a minimal app, until ``shim.app.create_app`` takes over.

:func:`create_passthrough_app` routes every request to :func:`shim.passthrough.proxy`
(or, without ``nova_url``, to version discovery and a 404 fault), behind the real fault
middleware, with the session built as the shim builds it (:func:`make_session`).
:func:`running` serves an app the way production does (``auto_decompress=False``, no
handler cancellation), which pytest-aiohttp's ``aiohttp_server`` cannot do: it forces
``handler_cancellation=True``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from shim.discovery import discovery_handler
from shim.faults import ItemNotFound, fault_middleware
from shim.keys import SESSION, SETTINGS
from shim.passthrough import pool_trace_config, proxy
from shim.settings import Settings


def make_session(settings: Settings) -> aiohttp.ClientSession:
    """One shared session as SPEC/STYLE §4 want it: explicit pool, no cookies, no env."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=settings.pool_size,
            limit_per_host=settings.pool_size,
            keepalive_timeout=settings.keepalive_timeout,
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        timeout=aiohttp.ClientTimeout(
            total=None, connect=settings.connect_timeout, sock_read=settings.nova_read_timeout
        ),
        trace_configs=[pool_trace_config()],
    )


@asynccontextmanager
async def _session_context(app: web.Application) -> AsyncIterator[None]:
    async with make_session(app[SETTINGS]) as session:
        app[SESSION] = session
        yield


async def _dispatch(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if settings.nova_url is None:
        response = await discovery_handler(request, settings)
        if response is None:
            raise ItemNotFound()
        return response
    return await proxy(request, request.app[SESSION], settings.nova_url, settings)


def create_passthrough_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[fault_middleware])
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_session_context)
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


@asynccontextmanager
async def running(
    app: web.Application, *, host: str = "127.0.0.1", **runner_kwargs: Any
) -> AsyncIterator[URL]:
    """Serve *app* on a free port like production; yields its base URL."""
    options: dict[str, Any] = {"auto_decompress": False, "handler_cancellation": False}
    options.update(runner_kwargs)
    runner = web.AppRunner(app, **options)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = runner.addresses[0][1]
        yield URL.build(scheme="http", host=host, port=port)
    finally:
        await runner.cleanup()
