"""Thin handlers for the legacy image routes: list, detail, show, delete.

`shim.legacy.table` routes requests here after Nova's checks. Handlers translate with the
pure modules and talk to Glance through `GlanceClient`; they never catch faults. Lists
stream when they span Glance pages, so memory stays flat whatever the catalogue size
(docs/contract.md §4).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog
from aiohttp import web

from shim.auth import Identity, forget_rejected
from shim.faults import (
    BadRequest,
    NovaFault,
    OverLimit,
    Unauthorized,
)
from shim.glance import GlanceClient, GlancePage
from shim.keys import GLANCE, GLANCE_CLIENTS, GLANCE_LINK_BASE, RENDERER, SETTINGS
from shim.legacy.call import LegacyCall, json_response
from shim.legacy.links import link_context_for
from shim.legacy.query import (
    ListQuery,
    decode_query,
    next_link_query,
    to_glance_query,
    wants_next_link,
)
from shim.legacy.render import PageRenderer
from shim.legacy.views import LinkContext

log = structlog.get_logger(__name__)


def no_image_endpoint(interface: str, region: str | None) -> str:
    where = f"region {region}" if region is not None else "any region"
    return (
        f"No {interface} image service endpoint in {where} was found in the service "
        "catalogue of the token."
    )


def image_service(app: web.Application, identity: Identity) -> tuple[GlanceClient, str]:
    """The Glance client for this caller and the base of its ``alternate`` links.

    ``SHIM_GLANCE_URL`` if set; otherwise (keystone mode) the token catalogue's ``image``
    endpoint, whose absence is the deployment's fault, not the client's: 503, not 500.
    Links use ``SHIM_GLANCE_PUBLIC_URL``, else the catalogue's public endpoint, else the
    endpoint the shim calls.

    A catalogue without a matching image endpoint stays so until the deployment changes:
    a 500 ``computeFault`` saying what was searched (as Nova answers when its own catalogue
    lookup fails), not a 503 whose ``Retry-After`` would invite endless retries.
    """
    link_base = app[GLANCE_LINK_BASE]
    if app[SETTINGS].glance_url is not None:
        return app[GLANCE], link_base
    root = identity.image.api
    if root is None:
        settings = app[SETTINGS]
        region = settings.catalog_region
        log.error(
            "no_image_endpoint",
            project_id=identity.project_id,
            interface=settings.catalog_interface,
            region=region or "any",
        )
        raise NovaFault(no_image_endpoint(settings.catalog_interface, region), status=500)
    return app[GLANCE_CLIENTS].get(root), link_base or identity.image.public or root


async def show_image(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    image = await call.glance.show(call.caller, call.image_id)
    schema = await call.glance.schema(call.caller)
    view = PageRenderer(_links(request, call), schema, request.app[RENDERER]).render([image])
    return json_response(b'{"image":' + view + b"}", call)


async def delete_image(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    await call.glance.delete(call.caller, call.image_id)
    response = web.Response(status=204)
    # Nova labels its empty 204 as JSON too (nova.md §2.3).
    response.headers["Content-Type"] = call.content_type
    return response


async def list_detail(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    return await _list(request, call, detail=True)


async def list_basic(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    return await _list(request, call, detail=False)


async def _list(request: web.Request, call: LegacyCall, *, detail: bool) -> web.StreamResponse:
    params = decode_query(request.rel_url.raw_query_string)
    query = to_glance_query(params)
    links = _links(request, call)
    schema = await call.glance.schema(call.caller) if detail else None
    walk = _PageWalk(call, query)
    first = await walk.first()
    render = PageRenderer(links, schema, request.app[RENDERER]).render

    collection = "images/detail" if detail else "images"
    if not walk.more(first):
        items = walk.take(first)
        return json_response(
            # One copy of the page: chained `+` would copy it once per piece.
            b"".join(
                (
                    b'{"images":[',
                    render(items),
                    b"]",
                    _next_link(call, query, params, links, collection, items),
                    b"}",
                )
            ),
            call,
        )
    return await _stream(request, call, walk, first, render, params, links, collection)


async def _stream(
    request: web.Request,
    call: LegacyCall,
    walk: _PageWalk,
    page: GlancePage,
    render: Callable[[list[dict[str, Any]]], bytes],
    params: Sequence[tuple[str, str]],
    links: LinkContext,
    collection: str,
) -> web.StreamResponse:
    """Write pages as they come, fetching page N+1 while page N is written."""
    response = web.StreamResponse()
    response.content_type = call.content_type
    await response.prepare(request)
    await response.write(b'{"images":[')
    separator = b""
    last: list[dict[str, Any]] = []
    while True:
        upcoming = asyncio.ensure_future(walk.next(page)) if walk.more(page) else None
        try:
            if upcoming is not None:
                # Let it send its request now: Glance then works on page N+1 while page N
                # is rendered and written, instead of after.
                await asyncio.sleep(0)
            items = walk.take(page)
            if items:
                chunk = render(items)
                if separator:
                    await response.write(separator)  # a byte, rather than a copy of the page
                await response.write(chunk)
                separator = b","
                last = items
            if upcoming is None:
                break
            page = await upcoming
        except (NovaFault, Unauthorized) as error:
            # Headers and part of the list are out: the only honest signal left is to
            # break the connection, so the client cannot take a truncated list as whole.
            log.warning("stream_aborted", reason=type(error).__name__, images=walk.returned)
            if isinstance(error, Unauthorized):
                forget_rejected(request.app, call.caller.token)
            if request.transport is not None:
                request.transport.close()
            return response
        finally:
            # However the page ends (client gone, fault, cancellation), no fetch outlives it.
            if upcoming is not None and not upcoming.done():
                upcoming.cancel()
    tail = _next_link(call, walk.query, params, links, collection, last, walk.returned)
    await response.write(b"]" + tail + b"}")
    await response.write_eof()
    return response


class _PageWalk:
    """Glance pages for one Nova list: page size, remaining limit, markers."""

    def __init__(self, call: LegacyCall, query: ListQuery) -> None:
        self.call = call
        self.query = query
        self.page_size = query.page_size or call.settings.glance_page_size
        self.returned = 0

    def _request_size(self) -> int:
        if self.query.limit is None:
            return self.page_size
        return min(self.page_size, self.query.limit - self.returned)

    async def first(self) -> GlancePage:
        return await self._fetch(self.query.marker)

    async def next(self, page: GlancePage) -> GlancePage:
        return await self._fetch(page.next_marker)

    async def _fetch(self, marker: str | None) -> GlancePage:
        return await self.call.glance.list_page(
            self.call.caller, self.query.filters, self._request_size(), marker
        )

    def take(self, page: GlancePage) -> list[dict[str, Any]]:
        items = page.images
        if self.query.limit is not None:
            items = items[: self.query.limit - self.returned]
        self.returned += len(items)
        return items

    def more(self, page: GlancePage) -> bool:
        """True while Glance has more and the client's limit is not yet met."""
        if page.next_marker is None:
            return False
        seen = self.returned + len(page.images)
        return self.query.limit is None or seen < self.query.limit


def _next_link(
    call: LegacyCall,
    query: ListQuery,
    params: Sequence[tuple[str, str]],
    links: LinkContext,
    collection: str,
    items: Sequence[dict[str, Any]],
    returned: int | None = None,
) -> bytes:
    count = len(items) if returned is None else returned
    if not items or not wants_next_link(query.limit, call.settings.max_limit, count):
        return b""
    href = f"{links.self_base}/{collection}?{next_link_query(params, str(items[-1]['id']))}"
    return b',"images_links":' + orjson.dumps([{"rel": "next", "href": href}])


async def read_json_body(request: web.Request) -> Any:
    """The decoded JSON body, ``None`` when empty; Nova's 400 when it is not JSON."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise OverLimit("Request is too large.") from None
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("Malformed request body") from None


def _links(request: web.Request, call: LegacyCall) -> LinkContext:
    return link_context_for(
        request, call.target.prefix, call.target.project_id, call.glance_link_base
    )
