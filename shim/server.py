"""One worker's servers: the API on ``SHIM_LISTEN``, metrics and probes on ``SHIM_METRICS_LISTEN``.

`serve(settings)` runs until SIGTERM or SIGINT, then drains: ``/readyz`` turns 503, the API
socket stops accepting, idle keep-alive connections close, in-flight requests get up to
``SHIM_SHUTDOWN_TIMEOUT`` to finish (then they are cancelled), the upstream session closes,
and only then does the metrics port go away. It returns normally (exit status 0).

Server-side limits aiohttp 3.14 leaves to us (docs/proxying.md §15):

* **Header-read timeout.** aiohttp bounds neither the time to send a request head nor a
  head trickled byte by byte. `BoundedHeadHandler` closes a connection whose request
  head is not complete ``SHIM_HEADER_READ_TIMEOUT`` seconds after the connection opened
  (first request) or after the first byte of a later request on a keep-alive connection
  (idle keep-alive time is not counted; aiohttp's ``keepalive_timeout`` bounds that).
* **Oversized heads.** The parser refuses a request line over 8192 bytes, a header field
  over 8190, more than 128 headers (`PARSER_LIMITS`) or malformed HTTP before any
  middleware runs; `BoundedHeadHandler.handle_error` answers those with Nova fault JSON
  instead of aiohttp's plain text: 414 for the request line, 431 for header fields, 400
  ``badRequest`` otherwise. The two limits differ by design: aiohttp raises the
  same ``LineTooLong`` for both and only its limit tells them apart. The offending text
  is never logged (it may be a token).

These use aiohttp internals (``Server._kwargs``, ``RequestHandler._messages``,
``_request_count``, ``_request_in_progress``); tests pin the behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from shim.access import ACCESS_LOGGER, AccessLogger
from shim.app import create_app
from shim.faults import FAULT_CONTENT_TYPE, UNEXPECTED_MESSAGE, NovaFault
from shim.keys import RENDERER, RUNTIME
from shim.limits import HEADERS_TOO_LARGE, URI_TOO_LONG
from shim.metrics import create_metrics_app, prime
from shim.runtime import Runtime
from shim.settings import Address, Settings
from shim.tls import ListenerCertificate

log = structlog.get_logger(__name__)

# aiohttp's parser limits, by its own keyword names: request line, header field, headers.
PARSER_LIMITS: Final = {"max_line_size": 8192, "max_field_size": 8190, "max_headers": 128}
# Above any load balancer's idle timeout, so the balancer closes first (proxying.md §9).
KEEPALIVE_TIMEOUT: Final = 75.0
BACKLOG: Final = 1024
MALFORMED: Final = "Malformed request"


class StartupFailed(Exception):
    """A worker could not start serving (port taken, bad address ...)."""


class BoundedHeadHandler(RequestHandler):
    """aiohttp's protocol, plus a header-read deadline and Nova faults for parse errors."""

    def __init__(self, manager: web.Server, *, header_read_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = header_read_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._last_payload: StreamReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Bytes arriving while no body is pending belong to a request head.
        awaiting_head = self._last_payload is None or self._last_payload.is_eof()
        count = self._request_count
        super().data_received(data)
        if self._request_count != count:
            self._cancel_head_timer()
            if self._messages:
                self._last_payload = self._messages[-1][1]
        elif awaiting_head and data:
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self._loop.call_later(self._head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        log.info("header_read_timeout", remote=_peer(self.peername), seconds=self._head_timeout)
        if self._request_in_progress or self._messages:
            self.close()  # a request is being answered: close once it is done
        else:
            self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, ConnectionError):
            # The client went away mid-answer (proxying.md §12): not a server error.
            log.info("client_disconnected", path=request.path, error=type(exc).__name__)
            fault = NovaFault(UNEXPECTED_MESSAGE, status=500)
        elif status >= 500:  # an exception escaped the fault middleware (504: a timeout)
            log.error("unhandled_error", path=request.path, status=status, exc_info=exc)
            fault = NovaFault(UNEXPECTED_MESSAGE, status=status)
        else:
            fault = parse_fault(status, exc, max_line_size=self.max_line_size)
            # Client errors, expected on a public port: the type only, never the text.
            level = logging.DEBUG if isinstance(exc, BadHttpMethod) else logging.INFO
            log.log(
                level,
                "bad_http_request",
                status=fault.status,
                error=type(exc).__name__,
                remote=request.remote,
            )
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send an error response")
        response = web.Response(status=fault.status, body=fault.body())
        response.headers["Content-Type"] = FAULT_CONTENT_TYPE
        response.force_close()
        return response


def parse_fault(status: int, exc: BaseException | None, *, max_line_size: int) -> NovaFault:
    """The Nova fault for an HTTP parser error (see module docstring)."""
    if isinstance(exc, LineTooLong):
        if exc.args[1] == max_line_size:
            return NovaFault(URI_TOO_LONG, status=414)
        return NovaFault(HEADERS_TOO_LARGE, status=431)
    if isinstance(exc, HttpProcessingError) and exc.message == "Too many headers received":
        return NovaFault(HEADERS_TOO_LARGE, status=431)
    return NovaFault(MALFORMED, status=status if 400 <= status < 500 else 400)


def _peer(peername: object) -> str | None:
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return None


class BoundedHeadServer(web.Server):
    def __call__(self) -> RequestHandler:
        return BoundedHeadHandler(self, loop=self._loop, **self._kwargs)


class ShimRunner(web.AppRunner):
    """An AppRunner whose connections use `BoundedHeadHandler`."""

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()  # startup, freeze, handler_args merged
        return BoundedHeadServer(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **base._kwargs,
        )


def api_runner(app: web.Application, settings: Settings) -> ShimRunner:
    return ShimRunner(
        app,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
        access_log_class=AccessLogger,
        access_log=logging.getLogger(ACCESS_LOGGER),
        header_read_timeout=settings.header_read_timeout,
        **PARSER_LIMITS,
        # Passthrough bodies reach Nova byte for byte (proxying.md §4); a client that
        # disconnects must not cancel a write half-way (proxying.md §12).
        auto_decompress=False,
        handler_cancellation=False,
    )


@dataclass(slots=True)
class Running:
    """The started servers of one worker (`start`); `stop` drains them."""

    runtime: Runtime
    api: ShimRunner
    metrics: web.AppRunner | None
    shutdown_timeout: float

    @property
    def api_port(self) -> int:
        return int(self.api.addresses[0][1])

    @property
    def metrics_port(self) -> int | None:
        if self.metrics is None:
            return None
        return int(self.metrics.addresses[0][1])

    async def stop(self) -> None:
        self.runtime.draining = True
        server = self.api.server
        log.info(
            "draining",
            connections=len(server.connections) if server is not None else 0,
            bound_seconds=self.shutdown_timeout,
        )
        try:
            # Stops accepting, closes idle connections, waits for in-flight requests up to
            # shutdown_timeout, cancels the rest, then closes the upstream session.
            await self.api.cleanup()
        finally:
            if self.metrics is not None:
                await self.metrics.cleanup()


@dataclass(frozen=True, slots=True)
class Listeners:
    """The listening sockets of one shim: the API's, and the metrics port's unless off.

    Bound once, by the process that owns the address (the master when there are several
    workers, which inherit them across ``fork``), without ``SO_REUSEPORT``: a second shim
    started on the same address then fails with "address in use" whatever its worker
    count, instead of quietly taking a share of the first one's connections.
    """

    api: socket.socket
    metrics: socket.socket | None

    def close(self) -> None:
        self.api.close()
        if self.metrics is not None:
            self.metrics.close()


def bind_listener(address: Address) -> socket.socket:
    """A listening TCP socket on *address* (``::`` is dual-stack where the host allows)."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    dual = address.host == "::" and socket.has_dualstack_ipv6()
    sock = socket.create_server(
        (address.host, address.port), family=family, backlog=BACKLOG, dualstack_ipv6=dual
    )
    sock.setblocking(False)
    return sock


def bind_listeners(settings: Settings) -> Listeners:
    """Bind the API and metrics addresses; `OSError` (address in use, …) if either fails."""
    api = bind_listener(settings.listen)
    try:
        metrics = (
            bind_listener(settings.metrics_listen) if settings.metrics_listen is not None else None
        )
    except BaseException:
        api.close()
        raise
    return Listeners(api, metrics)


async def start(
    settings: Settings,
    *,
    listeners: Listeners | None = None,
    app: web.Application | None = None,
) -> Running:
    """Start the API and metrics servers on *listeners* (bound here when not given; ports
    0 allowed); undo everything on failure."""
    app = app if app is not None else create_app(settings)
    runtime = app[RUNTIME]
    api = api_runner(app, settings)
    metrics_runner: web.AppRunner | None = None
    owned = listeners is None
    await api.setup()
    try:
        if listeners is None:
            listeners = bind_listeners(settings)
        await web.SockSite(
            api, listeners.api, backlog=BACKLOG, ssl_context=listener_tls(settings)
        ).start()
        if listeners.metrics is not None:
            prime_metrics(settings)
            metrics_runner = web.AppRunner(
                create_metrics_app(runtime), access_log=None, handle_signals=False
            )
            await metrics_runner.setup()
            await web.SockSite(metrics_runner, listeners.metrics).start()
    except BaseException:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await api.cleanup()
        if owned and listeners is not None:
            listeners.close()
        raise
    return Running(runtime, api, metrics_runner, settings.shutdown_timeout)


def listener_tls(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS on the API port when ``SHIM_TLS_CERT`` is set (never on the metrics port:
    probes and scrapers stay plain HTTP)."""
    if settings.tls_cert is None:
        return None
    return ListenerCertificate(settings.tls_cert, settings.tls_key).context


def settle_heap() -> None:
    """Move everything start-up built (modules, settings, sessions) out of the collector's
    reach: the cyclic GC then walks only what requests allocate, not the whole program,
    each time a page's thousands of records trigger a full collection (BENCHMARKS.md)."""
    gc.collect()
    gc.freeze()


async def serve(settings: Settings, *, listeners: Listeners | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain (module docstring). Raises if it cannot start."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        try:
            running = await start(settings, listeners=listeners)
        except OSError as exc:
            raise StartupFailed(f"cannot listen: {exc}") from exc
        except Exception as exc:
            raise StartupFailed(f"{type(exc).__name__}: {exc}") from exc
        settle_heap()
        log.info(
            "listening",
            api=running.api_port,
            scheme="https" if settings.tls_cert else "http",
            metrics=running.metrics_port,
            header_read_timeout=settings.header_read_timeout,
            renderer=running.api.app[RENDERER].name,  # the one the app resolved
        )
        await stop.wait()
        await running.stop()
        log.info("stopped")
    finally:
        for signum in signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)


def prime_metrics(settings: Settings) -> None:
    """Zero the upstream series this configuration uses, so alerts see the first failures."""
    calls = [("glance", "list"), ("glance", "show")]
    if settings.auth == "keystone":
        calls.append(("keystone", "validate"))
    if settings.nova_url is not None:
        calls.append(("nova", "passthrough"))
    prime(calls, token_cache=settings.auth == "keystone")
