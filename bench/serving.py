"""Runs a floor server the way the shim runs: one shared ClientSession, N SO_REUSEPORT workers.

Shared by `bench.passthrough_floor` and `bench.parse_floor`, so the two floors differ only in
their handler. The session settings mirror the shim's defaults (settings.py): a pool of 100
connections kept alive, ``DummyCookieJar``, an explicit timeout, no access log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Final

import aiohttp
from aiohttp import web

from bench.loops import loop_factory

SESSION: Final = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM: Final = web.AppKey("upstream", str)
POOL_SIZE: Final = 100
KEEPALIVE: Final = 10.0
TIMEOUT: Final = aiohttp.ClientTimeout(total=30.0, connect=5.0)

Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]


def make_app(upstream: str, handler: Handler, *, decompress: bool) -> web.Application:
    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(
            limit=POOL_SIZE, limit_per_host=POOL_SIZE, keepalive_timeout=KEEPALIVE
        )
        async with aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=TIMEOUT,
            auto_decompress=decompress,
        ) as session:
            app[SESSION] = session
            yield

    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/{tail:.*}", handler)
    return app


def upstream_headers(request: web.Request) -> dict[str, str]:
    token = request.headers.get("X-Auth-Token")
    return {"X-Auth-Token": token} if token else {}


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=True, backlog=4096)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _serve_one(build: Callable[[], web.Application], host: str, port: int, loop: str) -> None:
    factory, _ = loop_factory(loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve(build(), host, port))


def run(build: Callable[[], web.Application], listen: str, workers: int, loop: str) -> None:
    """Serve in this process (1 worker) or in *workers* forked SO_REUSEPORT children."""
    host, _, port_text = listen.rpartition(":")
    port = int(port_text)
    if workers == 1:
        _serve_one(build, host, port, loop)
        return
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _serve_one(build, host, port, loop)
            except BaseException:  # a worker must never return into the parent's loop
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for _ in children:
        _, code = os.wait()
        if code and not status:
            status = 1
            forward(signal.SIGTERM, None)
    sys.exit(status)


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--upstream", required=True, help="Glance base URL")
    parser.add_argument("--listen", default="127.0.0.1:8090", help="host:port")
    parser.add_argument("--workers", type=int, default=1, help="SO_REUSEPORT worker processes")
    parser.add_argument(
        "--loop", choices=("auto", "uvloop", "asyncio"), default="auto", help="event loop"
    )
    return parser.parse_args(argv)


def serve_floor(
    description: str, handler: Handler, *, decompress: bool, argv: list[str] | None = None
) -> None:
    """A floor's ``main``: its flags, then *handler* served as `run` serves it."""
    args = parse_args(description, argv)
    run(
        lambda: make_app(args.upstream, handler, decompress=decompress),
        args.listen,
        args.workers,
        args.loop,
    )
