"""create_app(settings): the API application — one catch-all route, middlewares, lifecycle.

Routing is done by `dispatch`, not aiohttp's router: legacy image paths are matched after
merging repeated slashes (docs/contract.md §1) and must never get aiohttp's automatic HEAD or 405
handling; everything else goes to Nova untouched, or, with no Nova upstream, to the
shim's own version documents.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import hdrs, web
from yarl import URL

from shim.access import observe_middleware
from shim.catalog import EndpointCache
from shim.context import request_id_middleware, stamp_response
from shim.deprecation import deprecation_headers
from shim.discovery import discovery_handler
from shim.faults import ItemNotFound, NovaFault, fault_middleware
from shim.glance import GlanceClient
from shim.keys import (
    DEPRECATION_HEADERS,
    GLANCE,
    GLANCE_CLIENTS,
    GLANCE_LINK_BASE,
    KEYSTONE,
    LEGACY_TARGET,
    MAX_VERSION,
    NOVA_SESSION,
    PASSTHROUGH,
    RENDERER,
    RUNTIME,
    SESSION,
    SETTINGS,
)
from shim.keystone import Keystone
from shim.legacy.microversion import parse_max
from shim.legacy.render import select_renderer
from shim.legacy.table import serve_legacy
from shim.legacy.views import glance_base_url
from shim.limits import limits_middleware
from shim.passthrough import proxy
from shim.runtime import Runtime
from shim.settings import Settings
from shim.tls import UpstreamTrust
from shim.upstream import upstream_session


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        # observe_middleware first: it must see every request, faults and disconnects.
        # limits_middleware inside fault_middleware: its refusals are rendered as faults.
        middlewares=[
            observe_middleware,
            request_id_middleware,
            fault_middleware,
            limits_middleware,
        ],
        client_max_size=settings.max_body,
        # Passthrough bodies must reach Nova byte for byte (docs/proxying.md §4).
        handler_args={"auto_decompress": False},
    )
    app[SETTINGS] = settings
    app[RENDERER] = select_renderer(settings.renderer)
    app[RUNTIME] = Runtime()
    app[MAX_VERSION] = parse_max(settings.max_microversion)
    app[DEPRECATION_HEADERS] = deprecation_headers(
        settings.deprecation, settings.sunset, settings.deprecation_link
    )
    app.cleanup_ctx.append(upstreams)
    app.on_response_prepare.append(stamp_response)
    app.router.add_route("*", r"/{tail:[\s\S]*}", dispatch, expect_handler=expect_continue)
    return app


@asynccontextmanager
async def upstreams(app: web.Application) -> AsyncIterator[None]:
    """The one ClientSession (and its pool) for Glance, Keystone and Nova."""
    settings = app[SETTINGS]
    trust = upstream_trust(settings)
    # Glance's trust by default: catalogue endpoints are Glance too; Keystone passes its own.
    session = upstream_session(settings, trust.glance)
    # Nova passthrough streams (bodies of hundreds of MB, slow clients) get a pool of their
    # own, so they can never starve the Glance and Keystone calls of the image routes.
    nova_session = (
        upstream_session(settings, trust.nova, nova=True) if settings.nova_url is not None else None
    )
    app[SESSION] = session
    if nova_session is not None:
        app[NOVA_SESSION] = nova_session
    if settings.glance_url is not None:
        app[GLANCE] = GlanceClient(session, settings, settings.glance_url)
    else:
        # keystone mode without SHIM_GLANCE_URL: one client per catalogue endpoint.
        app[GLANCE_CLIENTS] = EndpointCache(lambda root: GlanceClient(session, settings, URL(root)))
    if settings.auth == "keystone":
        app[KEYSTONE] = Keystone(session, settings, tls=trust.keystone)
    link_base = settings.glance_link_base
    app[GLANCE_LINK_BASE] = glance_base_url(str(link_base)) if link_base is not None else ""
    app[RUNTIME].session_open = True
    try:
        yield
    finally:
        app[RUNTIME].session_open = False
        await session.close()
        if nova_session is not None:
            await nova_session.close()


def upstream_trust(settings: Settings) -> UpstreamTrust:
    return UpstreamTrust.build(
        ca_file=settings.ca_file,
        glance_ca_file=settings.glance_ca_file,
        keystone_ca_file=settings.keystone_ca_file,
        nova_ca_file=settings.nova_ca_file,
        verify=settings.tls_verify,
        client_cert=settings.client_cert,
        client_key=settings.client_key,
    )


async def expect_continue(request: web.Request) -> None:
    """``Expect: 100-continue`` answered as aiohttp does; any other expectation ignored.

    aiohttp's default answers it with a plain-text 417 before any middleware runs, which
    is no Nova fault; RFC 9110 §10.1.1 lets a server ignore an expectation it does not know.
    """
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version == aiohttp.HttpVersion11 and expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        # The interim answer is not part of the response body (as in aiohttp's default).
        request.writer.output_size = 0


async def dispatch(request: web.Request) -> web.StreamResponse:
    target = request.get(LEGACY_TARGET)
    if target is not None:
        return await serve_legacy(request, target)
    settings = request.app[SETTINGS]
    if settings.nova_url is not None:
        request[PASSTHROUGH] = True
        try:
            return await proxy(request, request.app[NOVA_SESSION], settings.nova_url, settings)
        except NovaFault:
            request[PASSTHROUGH] = False  # our own fault: stamp it like any other
            raise
    document = await discovery_handler(request, settings, request.app[MAX_VERSION])
    if document is None:
        raise ItemNotFound()
    return document
