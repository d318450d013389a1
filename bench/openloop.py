"""Open-loop load at a fixed rate, latency measured from each request's *scheduled* time.

wrk is closed-loop (a slow answer delays the next request, hiding the queueing it caused) and
Debian has no wrk2, so this is the constant-rate generator: request *i* is due at
``start + i / rate`` whatever happened before; if no connection is free it waits for one, and
that wait counts in its latency (no coordinated omission). Raw asyncio streams over HTTP/1.1
keep-alive, Content-Length and chunked bodies; prints one JSON object.

    python -m bench.openloop --url http://127.0.0.1:8092/v2/images?limit=25 --rate 400 \
        --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.loops import loop_factory

_DRAIN_SECONDS = 10.0


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; (status, keep-alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    keep_alive = headers.get("connection", "").lower() != "close"
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";", 1)[0], 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                break
            await reader.readexactly(size + 2)
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    else:
        await reader.read()
        keep_alive = False
    return status, keep_alive


async def run(
    url: str, rate: float, duration: float, connections: int, token: str
) -> dict[str, object]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nX-Auth-Token: {token}\r\n"
        "Accept: application/json\r\nUser-Agent: bench-openloop\r\n\r\n"
    ).encode()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = 0
    open_lock = asyncio.Lock()
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0
    non_2xx = 0

    async def acquire() -> Connection:
        nonlocal opened
        if idle.empty():
            async with open_lock:
                if opened < connections:
                    opened += 1
                    try:
                        reader, writer = await asyncio.open_connection(host, port)
                    except OSError:
                        opened -= 1
                        raise
                    return Connection(reader, writer)
        return await idle.get()

    async def one(due: float) -> None:
        nonlocal errors, non_2xx, opened
        try:
            conn = await acquire()
        except OSError:
            errors += 1
            return
        try:
            conn.writer.write(request)
            status, keep_alive = await _read_response(conn.reader)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            errors += 1
            conn.writer.close()
            opened -= 1
            return
        latencies.append(time.perf_counter() - due)
        if not 200 <= status < 300:
            non_2xx += 1
        if keep_alive:
            idle.put_nowait(conn)
        else:
            conn.writer.close()
            opened -= 1

    total = int(rate * duration)
    tasks: set[asyncio.Task[None]] = set()
    # perf_counter, not loop.time(): uvloop's clock has millisecond resolution.
    start = time.perf_counter() + 0.05
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(max(0.0, time.perf_counter() - due))
        task = asyncio.create_task(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    # Request 0 is due at `start`, request total-1 at start + (total-1)/rate.
    sent_seconds = time.perf_counter() - start + 1 / rate
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=_DRAIN_SECONDS)
        for task in pending:
            task.cancel()
        errors += len(pending)
    while not idle.empty():
        idle.get_nowait().writer.close()
    latencies.sort()
    lags.sort()

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else 0.0

    return {
        "scheduled": total,
        "completed": len(latencies),
        "rate": rate,
        "achieved_rate": total / sent_seconds if sent_seconds else 0.0,
        "errors": errors,
        "non_2xx": non_2xx,
        "connections_opened": opened,
        "p50_ms": pct(latencies, 0.50),
        "p90_ms": pct(latencies, 0.90),
        "p99_ms": pct(latencies, 0.99),
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "dispatch_lag_p99_ms": pct(lags, 0.99),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of sending")
    parser.add_argument("--connections", type=int, default=64, help="most open connections")
    parser.add_argument("--token", default="bench")
    args = parser.parse_args(argv)
    factory, _ = loop_factory("auto")
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(run(args.url, args.rate, args.duration, args.connections, args.token))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
