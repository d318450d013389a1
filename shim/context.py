"""Request-id middleware and the one response-prepare hook, which stamps the shim's headers.

A well-formed ``X-Openstack-Request-Id`` from the client is kept (so a trace can span
client, shim and Glance); anything else is replaced by a fresh ``req-<uuid>``. Every
answer the shim itself produces (success, fault or stream) carries it as
``x-openstack-request-id`` and ``x-compute-request-id``, plus the headers a legacy route
queued under ``RESPONSE_HEADERS`` (microversion, ``Vary``; never on a 401) and, on legacy
image routes, the deprecation headers. Passthrough answers are Nova's own and are left
untouched. The hook also hands the response to the request's access record, for requests
that end in a disconnect.
"""

from __future__ import annotations

import random
import re
from typing import Final

import structlog
from aiohttp import web

from shim.faults import Handler
from shim.keys import DEPRECATION_HEADERS, OBSERVED, PASSTHROUGH, REQUEST_ID, RESPONSE_HEADERS

_REQUEST_ID_RE: Final = re.compile(
    r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)


def request_id_from(header: str | None) -> str:
    if header is not None and _REQUEST_ID_RE.match(header):
        return header
    return new_request_id()


def new_request_id() -> str:
    """``req-`` and a random (version 4) UUID, as Nova's ``generate_request_id``.

    Drawn from `random` rather than `uuid.uuid4`: the id is a correlation handle, not a
    secret, and a getrandom() system call per request cost more than the rest of this
    middleware (BENCHMARKS.md). `random` is reseeded in every forked worker.
    """
    bits = random.getrandbits(128)
    bits = (bits & _VERSION_CLEAR) | _VERSION_4
    text = f"{bits:032x}"
    return f"req-{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


# RFC 9562: version 4 in bits 48-51, variant 0b10 in bits 64-65 (from the most significant).
_VERSION_CLEAR: Final = ~((0xF << 76) | (0x3 << 62))
_VERSION_4: Final = (0x4 << 76) | (0x2 << 62)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request_id_from(request.headers.get("X-Openstack-Request-Id"))
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return await handler(request)


async def stamp_response(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: runs just before any response's headers are sent."""
    record = request.get(OBSERVED)
    if record is not None:
        record.response = response
    if request.get(PASSTHROUGH):
        return
    headers = response.headers
    if response.status != 401:
        # keystonemiddleware answers a 401 before Nova's API runs: no microversion
        # headers and no Vary on it, whatever the request asked for.
        for name, value in request.get(RESPONSE_HEADERS, ()):
            headers.add(name, value)
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        headers["x-openstack-request-id"] = request_id
        headers["x-compute-request-id"] = request_id
    if record is not None and record.legacy:
        for name, value in request.app[DEPRECATION_HEADERS]:
            headers.add(name, value)
