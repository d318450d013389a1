"""Streaming passthrough of every compute request the shim does not answer itself.

Owns one handler, :func:`proxy`, in the shape docs/proxying.md recommends: the target URL
is built from the encoded path and query exactly as received (under the upstream's path
prefix), both bodies stream in 64 KiB pieces without decoding, hop-by-hop fields are
dropped both ways (``headers.py``), and the upstream answer is written from inside the
client's ``async with`` so the connection is released on every path.

Failures, as docs/contract.md §6 and §5 ask:

* before any byte of the answer was sent: refused or broken upstream → 502, connect or
  first-byte timeout → 504, no free pooled connection within ``connect_timeout`` → 503
  with ``Retry-After`` (needs :func:`pool_trace_config` on the session, else 504); all
  Nova fault JSON raised as :class:`~shim.faults.NovaFault` for the fault middleware;
* after the answer began: the client connection is reset (:class:`UpstreamBroken` ends the
  relay), so a truncated body can never look complete (proxying.md §12);
* the client going away mid-answer is not an error: logged at info, upstream closed.

Links in Nova's answers are kept on the shim (docs/contract.md, Links in passthrough
answers; the rewrite is ``nova_links.py``): ``Location`` always, and the ``href`` values of
an uncompressed JSON answer, held whole up to ``BUFFERED_BODY_MAX`` (so it keeps an exact
Content-Length) or rewritten piece by piece as it streams above that. Every other body is
relayed byte for byte as it arrives.

It must not buffer a body beyond that bound, decode one, follow redirects, or keep cookies
(the session is built with ``DummyCookieJar`` and ``trust_env=False`` in ``app.py``). The
server must run with ``auto_decompress=False`` so request bodies arrive as the client sent
them.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Final

import aiohttp
import structlog
from aiohttp import web
from yarl import URL

from shim.faults import (
    BadGateway,
    BadRequest,
    GatewayTimeout,
    ItemNotFound,
    NovaFault,
    ServiceUnavailable,
)
from shim.headers import (
    client_scheme_host,
    filter_request_headers,
    filter_response_headers,
    forwarded_headers,
    is_trusted,
    link_base,
    told_hosts,
    via_value,
)
from shim.keys import REQUEST_ID
from shim.nova_links import BodyMode, LinkStream, NovaLinks, body_mode, nova_links
from shim.settings import Settings
from shim.tls import log_tls_failure, tls_failure

log = structlog.get_logger(__name__)

CHUNK_SIZE: Final = 64 * 1024
REQUEST_ID_HEADER: Final = "x-openstack-request-id"
# aiohttp adds these when absent (proxying.md §3); only the client's own may pass.
SKIP_AUTO_HEADERS: Final = frozenset({"Accept", "Accept-Encoding", "Content-Type", "User-Agent"})
# A dot-segment, literal or percent-encoded (RFC 3986 §3.3, §5.2.4). Legitimate clients
# remove them before sending; passed on they could climb out of the upstream's path prefix
# at whatever normalises next, so such paths are refused instead.
_DOT_SEGMENT: Final = re.compile(r"/(?:\.|%2e){1,2}(?=/|$)", re.IGNORECASE)
_SURROGATES: Final = re.compile("[\udc80-\udcff]")

MSG_CONNECT: Final = "The compute service is unavailable: could not connect to it."
MSG_CONNECT_TIMEOUT: Final = "The compute service did not accept a connection in time."
MSG_READ_TIMEOUT: Final = "The compute service did not respond in time."
MSG_BROKEN: Final = "The compute service closed the connection without a valid response."
MSG_TLS: Final = "The compute service is unavailable: its TLS connection could not be set up."
MSG_BUSY: Final = "Too many requests are waiting for the compute service; retry later."
MSG_BAD_HEADER: Final = "Invalid request header: names and values must be UTF-8."
MSG_BAD_METHOD: Final = "The CONNECT method is not supported."


class UpstreamBroken(ConnectionResetError):
    """The upstream failed after the answer began; the client connection was reset.

    A ``ConnectionResetError`` so the fault middleware lets it through: no fault can be
    sent once headers are out.
    """


@dataclass(slots=True)
class PoolWait:
    """Per-request trace context: is the request queued for a pooled connection now?"""

    waiting: bool = False


async def _on_queue_signal(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceConnectionQueuedStartParams | aiohttp.TraceConnectionQueuedEndParams,
) -> None:
    """The request starts (queued start) or stops (queued end) waiting for a connection."""
    if isinstance(context.trace_request_ctx, PoolWait):
        start = isinstance(params, aiohttp.TraceConnectionQueuedStartParams)
        context.trace_request_ctx.waiting = start


def pool_trace_config() -> aiohttp.TraceConfig:
    """Trace config that lets :func:`proxy` tell pool exhaustion (503) from a slow connect.

    aiohttp's ``connect`` timeout covers both the wait for a free slot and the TCP connect
    (proxying.md §7); only the queue signals tell them apart. Pass it to the shared
    ``ClientSession(trace_configs=[...])``; other requests are unaffected.
    """
    config = aiohttp.TraceConfig()
    config.on_connection_queued_start.append(_on_queue_signal)
    config.on_connection_queued_end.append(_on_queue_signal)
    return config


def upstream_target(upstream: URL, request_url: URL) -> URL:
    """Upstream URL for *request_url*: its encoded path under the upstream's prefix.

    Built with ``encoded=True`` so ``%2F``, ``%28`` and ``+`` reach Nova untouched
    (proxying.md §10). ``URL.join`` is not used: it would drop the prefix.
    """
    return URL.build(
        scheme=upstream.scheme,
        authority=upstream.raw_authority,
        path=upstream.raw_path.rstrip("/") + request_url.raw_path,
        query_string=request_url.raw_query_string,
        encoded=True,
    )


def _request_headers(
    request: web.Request, inbound: list[tuple[str, str]], scheme: str, host: str, settings: Settings
) -> list[tuple[str, str]]:
    # aiohttp keeps non-UTF-8 header bytes as surrogates and its client would silently drop
    # them; refusing is better than passing on a different value.
    if any(_SURROGATES.search(name + value) for name, value in inbound):
        raise BadRequest(MSG_BAD_HEADER)
    peer = request.remote
    # The shim's request id goes to Nova as the caller's (oslo.middleware keeps it as the
    # global request id in Nova's log lines), so both logs can be joined; a client's own
    # well-formed id is the shim's id already (shim.context).
    sent = inbound
    if (request_id := request.get(REQUEST_ID)) is not None:
        sent = [(name, value) for name, value in inbound if name.lower() != REQUEST_ID_HEADER]
        sent.append(("X-OpenStack-Request-ID", request_id))
    headers = forwarded_headers(
        filter_request_headers(sent),
        peer,
        scheme,
        host,
        trusted=is_trusted(peer, settings.trusted_proxies),
    )
    headers.append(("Via", via_value(request.version.major, request.version.minor)))
    return _one_spelling(headers)


def _one_spelling(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Spell every repeat of a name like its first occurrence.

    ``ClientSession._prepare_headers`` (aiohttp 3.14.5) tracks names already added in a
    case-sensitive set, so ``X-A: 1`` followed by ``x-a: 2`` would reach Nova as ``x-a: 2``
    alone. Names are case-insensitive (RFC 9110 §5.1); values and order are what matter.
    """
    first: dict[str, str] = {}
    return [(first.setdefault(name.lower(), name), value) for name, value in headers]


def _response_headers(
    answer: aiohttp.ClientResponse, links: NovaLinks, mode: BodyMode, length: int | None
) -> list[tuple[str, str]]:
    headers = [
        (name, links.location(value)) if name.lower() == "location" else (name, value)
        for name, value in filter_response_headers(answer.headers.items())
        if mode == "as-is" or name.lower() != "content-length"
    ]
    if length is not None:
        headers.append(("Content-Length", str(length)))
    version = answer.version or aiohttp.HttpVersion11
    headers.append(("Via", via_value(version.major, version.minor)))
    return headers


def _request_fault(
    exc: aiohttp.ClientError | TimeoutError, wait: PoolWait, settings: Settings
) -> NovaFault:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        if wait.waiting:
            return ServiceUnavailable(MSG_BUSY, retry_after=settings.retry_after)
        return GatewayTimeout(MSG_CONNECT_TIMEOUT)
    if isinstance(exc, TimeoutError):
        return GatewayTimeout(MSG_READ_TIMEOUT)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return BadGateway(MSG_CONNECT)
    return BadGateway(MSG_BROKEN)


def _failed(
    request: web.Request,
    target: URL,
    exc: aiohttp.ClientError | TimeoutError,
    wait: PoolWait,
    settings: Settings,
) -> NovaFault:
    if (reason := tls_failure(exc)) is not None:
        log_tls_failure("nova", target, reason)
        return BadGateway(MSG_TLS)
    fault = _request_fault(exc, wait, settings)
    log.warning(
        "passthrough_failed",
        path=request.rel_url.path,
        status=fault.status,
        error=type(exc).__name__,
    )
    return fault


def _reset(request: web.Request) -> None:
    """Close the client connection with a TCP RST so no framing can look complete."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def proxy(
    request: web.Request,
    session: aiohttp.ClientSession,
    upstream: URL,
    settings: Settings,
) -> web.StreamResponse:
    """Relay *request* to *upstream* (the Nova base URL) and stream the answer back."""
    if request.method == "CONNECT":
        raise NovaFault(MSG_BAD_METHOD, status=405)
    raw_path = request.rel_url.raw_path
    if not raw_path.startswith("/") or _DOT_SEGMENT.search(raw_path):
        raise ItemNotFound()
    target = upstream_target(upstream, request.rel_url)
    inbound = list(request.headers.items())
    scheme, host = client_scheme_host(
        request.remote, inbound, request.scheme, request.host, settings.trusted_proxies
    )
    headers = _request_headers(request, inbound, scheme, host, settings)
    links = nova_links(
        str(upstream), link_base(settings.public_url, scheme, host), told_hosts(headers)
    )
    wait = PoolWait()
    async with contextlib.AsyncExitStack() as stack:
        try:
            answer = await stack.enter_async_context(
                session.request(
                    request.method,
                    target,
                    headers=headers,
                    data=request.content if request.body_exists else None,
                    skip_auto_headers=SKIP_AUTO_HEADERS,
                    allow_redirects=False,
                    auto_decompress=False,
                    timeout=aiohttp.ClientTimeout(
                        total=None,
                        connect=settings.connect_timeout,
                        sock_read=settings.nova_read_timeout,
                    ),
                    trace_request_ctx=wait,
                )
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _failed(request, target, exc, wait, settings) from None
        mode = body_mode(
            request.method,
            answer.status,
            answer.headers.get("Content-Type"),
            answer.headers.get("Content-Encoding"),
            answer.content_length,
        )
        body: bytes | None = None
        if mode == "whole":
            # Held whole (at most BUFFERED_BODY_MAX) so the answer keeps an exact length;
            # nothing was sent yet, so a failure here is still a clean fault.
            try:
                body = links.body(await answer.read())
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _failed(request, target, exc, wait, settings) from None
        response = web.StreamResponse(
            status=answer.status,
            reason=answer.reason or None,
            headers=_response_headers(answer, links, mode, None if body is None else len(body)),
        )
        try:
            await response.prepare(request)
            if body is not None:
                await response.write(body)
                await response.write_eof()
            else:
                await _relay(
                    request, answer, response, links.stream() if mode == "stream" else None
                )
        except UpstreamBroken:
            # Already logged and the client connection reset: return, so aiohttp does not
            # log an upstream failure as an unhandled "Error handling request" (its 500
            # path) on top; writing the end of the response then fails quietly.
            pass
        except ConnectionResetError:
            # The client went away (proxying.md §12): leaving the `async with` closes the
            # half-read upstream connection instead of returning it to the pool.
            log.info("passthrough_client_gone", path=request.rel_url.path)
    return response


async def _relay(
    request: web.Request,
    answer: aiohttp.ClientResponse,
    response: web.StreamResponse,
    rewrite: LinkStream | None,
) -> None:
    while True:
        try:
            chunk = await answer.content.read(CHUNK_SIZE)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "passthrough_upstream_broken",
                path=request.rel_url.path,
                error=type(exc).__name__,
            )
            _reset(request)
            raise UpstreamBroken(MSG_BROKEN) from exc
        if not chunk:
            break
        if rewrite is not None:
            chunk = rewrite.feed(chunk)  # empty while it holds back a possible link
        await response.write(chunk)
    if rewrite is not None:
        await response.write(rewrite.end())
    await response.write_eof()
