"""A recording, scriptable upstream: a real aiohttp app, never a mock.

Start it with ``url = await fake.start(aiohttp_server)`` (or any runner with
``auto_decompress=False``, else gzip request bodies are recorded decoded) and point the
shim at ``url``. Every request is recorded as a :class:`RecordedRequest` (method,
encoded path, raw query, headers in wire order with repeats, body bytes, size and digest).
Each path answers with the :class:`Reply` objects given to :meth:`RecordingUpstream.on`,
consumed in order, the last one repeating; unscripted paths get :attr:`~RecordingUpstream.
default`. A reply can stall, trickle, gzip, stream hundreds of MB from one block, send
garbage, or kill the connection (RST or FIN) before or partway through the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import socket
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pytest_aiohttp import AiohttpServer
from yarl import URL

DEFAULT_MAX_RECORDED_BODY = 16 * 1024 * 1024
# After the last bytes before a kill, let them reach the peer first.
SETTLE = 0.05
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    raw_path: str
    query_string: str
    headers: tuple[tuple[str, str], ...]
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    body_size: int
    body_sha256: str
    body_complete: bool
    version: tuple[int, int]
    peer: tuple[str, int] | None

    def header(self, name: str) -> str | None:
        """The first value of *name* (case-insensitive), or None."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    @property
    def header_names(self) -> set[str]:
        return {key.lower() for key, _ in self.headers}


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer. Defaults: ``200`` with an empty body and a Content-Length."""

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    chunks: Sequence[bytes] | None = None
    """Sent one write each (chunked unless ``headers`` has Content-Length)."""
    repeat: int = 1
    """Send the body or chunks this many times: large bodies from one small block."""
    reason: str | None = None
    read_body: bool = True
    """Read (and record) the request body before answering."""
    delay: float = 0.0
    """Seconds to wait before the status line."""
    chunk_delay: float | Sequence[float] = 0.0
    """Seconds to wait before each chunk; a sequence gives chunk i its own (last repeats)."""
    gzip: bool = False
    """Gzip the whole body (``mtime=0``: reproducible); sets Content-Encoding, Content-Length."""
    raw: bytes | None = None
    """Write these bytes instead of an HTTP answer, then close (garbage responses)."""
    abort_before_response: bool = False
    abort_after: int | None = None
    """Kill the connection after this many body bytes (0: right after the headers)."""
    abort_mode: Literal["reset", "close"] = "reset"
    close_after: bool = False
    """Close the connection after a complete answer, without ``Connection: close``."""

    @classmethod
    def json(
        cls,
        document: Any,
        status: int = 200,
        headers: Sequence[tuple[str, str]] = (),
        *,
        delay: float = 0.0,
    ) -> Reply:
        return cls(
            status=status,
            headers=(("Content-Type", "application/json"), *headers),
            body=json.dumps(document).encode(),
            delay=delay,
        )


@dataclass
class RecordingUpstream:
    """The fake service. ``app`` is a fresh aiohttp application serving every path."""

    default: Reply = field(default_factory=Reply)
    max_recorded_body: int = DEFAULT_MAX_RECORDED_BODY
    requests: list[RecordedRequest] = field(default_factory=list, init=False)
    aborted_by_peer: int = field(default=0, init=False)
    """Answers that the peer cut off (our write failed or the handler was cancelled)."""
    app: web.Application = field(init=False)
    _routes: dict[tuple[str | None, str], deque[Reply]] = field(default_factory=dict, init=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle)

    async def start(self, aiohttp_server: AiohttpServer) -> URL:
        """Serve on a free port (bodies recorded undecoded); returns the base URL."""
        server = await aiohttp_server(self.app, auto_decompress=False)
        return server.make_url("/")

    def on(self, path: str, *replies: Reply, method: str | None = None) -> None:
        """Answer *path* (encoded, no query) with *replies* in turn; the last one repeats."""
        self._routes[(method.upper() if method else None, path)] = deque(replies)

    def reset(self) -> None:
        self.requests.clear()
        self.aborted_by_peer = 0

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least *count* requests have been recorded."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.requests

    def _reply_for(self, method: str, path: str) -> Reply:
        queue = self._routes.get((method, path)) or self._routes.get((None, path))
        if not queue:
            return self.default
        return queue.popleft() if len(queue) > 1 else queue[0]

    async def _record(self, request: web.Request, read_body: bool) -> RecordedRequest:
        digest = hashlib.sha256()
        kept = bytearray()
        size = 0
        complete = False
        if read_body:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                async for chunk in request.content.iter_chunked(64 * 1024):
                    digest.update(chunk)
                    size += len(chunk)
                    if len(kept) < self.max_recorded_body:
                        kept += chunk[: self.max_recorded_body - len(kept)]
                complete = True
        peer = request.transport.get_extra_info("peername") if request.transport else None
        recorded = RecordedRequest(
            method=request.method,
            raw_path=request.rel_url.raw_path,
            query_string=request.rel_url.raw_query_string,
            headers=tuple(request.headers.items()),
            raw_headers=tuple(request.raw_headers),
            body=bytes(kept),
            body_size=size,
            body_sha256=digest.hexdigest(),
            body_complete=complete,
            version=(request.version.major, request.version.minor),
            peer=(peer[0], peer[1]) if peer else None,
        )
        self.requests.append(recorded)
        self._changed.set()
        return recorded

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        reply = self._reply_for(request.method, request.rel_url.raw_path)
        await self._record(request, reply.read_body)
        try:
            return await self._answer(request, reply)
        except (ConnectionError, asyncio.CancelledError):
            self.aborted_by_peer += 1
            raise

    async def _answer(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.abort_before_response:
            _kill(request, reply.abort_mode)
            return web.Response()
        if reply.raw is not None:
            assert request.transport is not None
            request.transport.write(reply.raw)
            request.transport.close()
            return web.Response()
        pieces = list(reply.chunks) if reply.chunks is not None else [reply.body]
        repeat = reply.repeat
        headers = list(reply.headers)
        names = {name.lower() for name, _ in headers}
        if reply.gzip:
            pieces, repeat = [gzip.compress(b"".join(pieces) * repeat, mtime=0)], 1
            if "content-encoding" not in names:
                headers.append(("Content-Encoding", "gzip"))
        if (
            "content-length" not in names
            and (reply.chunks is None or reply.gzip)
            and reply.status not in _NO_BODY_STATUSES
        ):
            headers.append(("Content-Length", str(sum(map(len, pieces)) * repeat)))
        response = web.StreamResponse(status=reply.status, reason=reply.reason, headers=headers)
        await response.prepare(request)
        delays = (
            reply.chunk_delay if isinstance(reply.chunk_delay, Sequence) else [reply.chunk_delay]
        )
        sent = 0
        index = 0
        for _ in range(repeat):
            for piece in pieces:
                if delay := delays[min(index, len(delays) - 1)] if delays else 0.0:
                    await asyncio.sleep(delay)
                index += 1
                if reply.abort_after is not None and sent + len(piece) >= reply.abort_after:
                    await response.write(piece[: reply.abort_after - sent])
                    await asyncio.sleep(SETTLE)
                    _kill(request, reply.abort_mode)
                    return response
                if piece:
                    await response.write(piece)
                sent += len(piece)
        if reply.abort_after is not None:
            await asyncio.sleep(SETTLE)
            _kill(request, reply.abort_mode)
            return response
        await response.write_eof()
        if reply.close_after and request.transport is not None:
            request.transport.close()
        return response


def _kill(request: web.Request, mode: Literal["reset", "close"]) -> None:
    transport = request.transport
    if transport is None:
        return
    if mode == "close":
        transport.close()
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
