"""Command line: flags + environment → Settings → logging → workers → the API server."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence

import structlog
from aiohttp import web

from shim.app import create_app
from shim.observability import configure_logging
from shim.settings import Settings, SettingsError

log = structlog.get_logger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_sources(os.environ, sys.argv[1:] if argv is None else argv)
    except SettingsError as exc:
        print(f"nova-image-shim: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    if settings.workers == 1:
        serve(settings, reuse_port=False)
        return 0
    return supervise(settings)


def serve(settings: Settings, *, reuse_port: bool) -> None:
    log.info("starting", listen=str(settings.listen), pid=os.getpid())
    web.run_app(
        create_app(settings),
        host=settings.listen.host,
        port=settings.listen.port,
        reuse_port=reuse_port,
        shutdown_timeout=settings.shutdown_timeout,
        print=None,
        access_log=None,
    )


def supervise(settings: Settings) -> int:
    """Fork one worker per CPU on a shared SO_REUSEPORT socket; relay SIGTERM/SIGINT."""
    children: list[int] = []
    for _ in range(settings.workers):
        pid = os.fork()
        if pid == 0:
            try:
                serve(settings, reuse_port=True)
            finally:
                os._exit(0)
        children.append(pid)

    def relay(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, relay)
    signal.signal(signal.SIGINT, relay)
    status = 0
    for child in children:
        _, code = os.waitpid(child, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return status
