"""Request-size limits the shim enforces itself, answered as Nova faults (docs/proxying.md §15).

aiohttp's HTTP parser refuses a request line or a header field over 8190 bytes with a
plain-text 400 before any middleware runs. The shim's own limits sit below that, so an
oversized request gets fault JSON like every other error, and operators can lower them:

=========================  ======  =====================================================
setting                    status  what is measured
=========================  ======  =====================================================
``SHIM_MAX_URL``           414     the request target: encoded path and query string
``SHIM_MAX_HEADER_BYTES``  431     every header line, ``name: value`` plus CRLF, summed
``SHIM_MAX_BODY``          413     a declared ``Content-Length`` on an image route
=========================  ======  =====================================================

The body of an image route is also bounded while it is read (``client_max_size``); a
passthrough body streams to Nova unbounded (proxying.md §14: size it at the ingress).
Nothing of the offending request is logged: it may carry a token.
"""

from __future__ import annotations

from typing import Final

import structlog
from aiohttp import web

from shim.faults import Handler, NovaFault, OverLimit
from shim.keys import LEGACY_TARGET, SETTINGS

log = structlog.get_logger(__name__)

URI_TOO_LONG: Final = "Request-URI Too Long"
HEADERS_TOO_LARGE: Final = "Request Header Fields Too Large"
BODY_TOO_LARGE: Final = "Request is too large."


def header_bytes(raw_headers: tuple[tuple[bytes, bytes], ...]) -> int:
    """Size of the header block as sent: ``name: value\\r\\n`` per line."""
    return sum(len(name) + len(value) + 4 for name, value in raw_headers)


@web.middleware
async def limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    target = len(request.raw_path)
    if target > settings.max_url:
        log.info("request_refused", reason="url_too_long", size=target)
        raise NovaFault(URI_TOO_LONG, status=414)
    size = header_bytes(request.raw_headers)
    if size > settings.max_header_bytes:
        log.info("request_refused", reason="headers_too_large", size=size)
        raise NovaFault(HEADERS_TOO_LARGE, status=431)
    length = request.content_length
    if length is not None and length > settings.max_body and LEGACY_TARGET in request:
        log.info("request_refused", reason="body_too_large", size=length)
        raise OverLimit(BODY_TOO_LARGE)
    return await handler(request)
