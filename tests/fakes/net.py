"""Network odds and ends for the tests: a port nobody listens on, pool occupancy, raw
connections, URLs sent as written. (A free port: `tests.stack.procs.free_port`.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from yarl import URL

from tests.stack.procs import free_port


def refused_url(host: str = "127.0.0.1") -> URL:
    """An http URL whose port was just bound and released, so connecting is refused."""
    return URL.build(scheme="http", host=host, port=free_port(host))


def as_written(client: TestClient[Any, Any], path: str) -> URL:
    """*path* on *client*'s server, sent exactly as written: a client-side URL parser would
    resolve dots and re-encode it."""
    return URL(str(client.make_url("")).rstrip("/") + path, encoded=True)


def acquired_connections(connector: aiohttp.BaseConnector) -> int:
    """Connections currently checked out of *connector*'s pool (in use by a request).

    aiohttp has no public counter; this reads the connector's own set, in one place.
    """
    return len(connector._acquired)


@asynccontextmanager
async def connection(url: URL) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A plain TCP connection to *url*'s host and port, for bytes no HTTP client would
    send; closed on the way out."""
    assert url.host is not None
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        await writer.wait_closed()


async def raw_exchange(url: URL, request: bytes) -> bytes:
    """Send *request* bytes as-is and read until the server closes."""
    async with connection(url) as (reader, writer):
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
