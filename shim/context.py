"""Request-id middleware and the response-prepare hook that stamps the shim's headers.

A well-formed ``X-Openstack-Request-Id`` from the client is kept (so a trace can span
client, shim and Glance); anything else is replaced by a fresh ``req-<uuid>``. Every
answer the shim itself produces (success, fault or stream) carries it as
``x-openstack-request-id`` and ``x-compute-request-id``, plus the headers a legacy route
queued under ``RESPONSE_HEADERS`` (microversion, ``Vary``, deprecation). Passthrough
answers are Nova's own and are left untouched.
"""

from __future__ import annotations

import re
import uuid
from typing import Final

import structlog
from aiohttp import web

from shim.faults import Handler
from shim.keys import PASSTHROUGH, REQUEST_ID, RESPONSE_HEADERS

_REQUEST_ID_RE: Final = re.compile(
    r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)


def request_id_from(header: str | None) -> str:
    if header is not None and _REQUEST_ID_RE.match(header):
        return header
    return f"req-{uuid.uuid4()}"


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request_id_from(request.headers.get("X-Openstack-Request-Id"))
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return await handler(request)


async def stamp_response(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: runs just before any response's headers are sent."""
    if request.get(PASSTHROUGH):
        return
    headers = response.headers
    for name, value in request.get(RESPONSE_HEADERS, ()):
        headers.add(name, value)
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        headers["x-openstack-request-id"] = request_id
        headers["x-compute-request-id"] = request_id
