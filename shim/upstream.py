"""How the shim calls Glance, Keystone and Nova: the sessions and their one middleware.

Two sessions, built here and owned by the app's cleanup context: one for Glance and
Keystone, one for Nova passthrough streams (bodies of hundreds of MB, slow clients), so
those can never starve the image routes of pooled connections. Both:

- use a `DummyCookieJar` (a shared jar would replay one caller's cookies to the next,
  docs/proxying.md §11) and explicit pool, keep-alive and connect settings;
- run every call through `upstream_middleware`, which times it (to its response headers,
  or its failure) for the access line and the ``nova_image_shim_upstream_*`` metrics, and
  makes sure a dropped connection is reported, never replayed: aiohttp resends an
  idempotent request (GET, PUT, DELETE) once when a pooled keep-alive connection breaks
  (proxying.md §6), but Glance GETs have their own budget (SHIM_GLANCE_RETRIES), a write
  must go out exactly once (docs/contract.md D11: a resent DELETE would answer 404 for an image it
  deleted), and the passthrough never retries.

A middleware rather than a ``TraceConfig``: aiohttp builds trace objects and sends their
signals on every request, which cost more than the timing itself (BENCHMARKS.md). Only
the Nova session keeps one, to tell a wait for a pool slot (503) from a wait on Nova (504).
"""

from __future__ import annotations

import asyncio
import ssl

import aiohttp

from shim.access import classify_upstream, note_upstream
from shim.passthrough import pool_trace_config
from shim.settings import Settings


def upstream_session(
    settings: Settings, tls: ssl.SSLContext, *, nova: bool = False
) -> aiohttp.ClientSession:
    """*tls* verifies https upstreams by default (Keystone calls pass their own)."""
    connector = aiohttp.TCPConnector(
        ssl=tls,
        limit=settings.pool_size,
        limit_per_host=settings.pool_size,
        keepalive_timeout=settings.keepalive_timeout,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(
            total=settings.glance_timeout, connect=settings.connect_timeout
        ),
        middlewares=(upstream_middleware(settings),),
        trace_configs=[pool_trace_config()] if nova else None,
    )


def upstream_middleware(settings: Settings) -> aiohttp.ClientMiddlewareType:
    nova, keystone = settings.nova_url, settings.keystone_url

    async def call_once(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        clock = asyncio.get_running_loop().time
        started = clock()
        service, operation = classify_upstream(
            request.method, request.url, nova=nova, keystone=keystone
        )
        try:
            response = await handler(request)
        except aiohttp.ClientConnectorError as error:
            # Never connected: nothing was sent, and callers tell a refusal apart.
            note_upstream(service, operation, None, error, clock() - started)
            raise
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as error:
            note_upstream(service, operation, None, error, clock() - started)
            # A plain ClientConnectionError is one aiohttp does not retry.
            raise aiohttp.ClientConnectionError(str(error)) from error
        except BaseException as error:
            note_upstream(service, operation, None, error, clock() - started)
            raise
        note_upstream(
            service,
            operation,
            response.status,
            None,
            clock() - started,
            response.headers.get("X-Openstack-Request-Id"),
        )
        return response

    return call_once
