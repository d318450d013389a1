"""Unpaged-list clients; each prints one JSON object.

``glance``: the direct baseline for an unpaged list, a minimal Python client that walks Glance's
pages (``limit`` + following ``next``) and parses each page with orjson, one page in memory at a
time. ``first_page_ms`` is the time to fetch the first whole page: "one Glance page time".

``shim``: one ``GET`` of an unpaged list from the shim, timing the response headers, the first
body byte and the last byte; the body is parsed only after the clock stops, to count images.

Both warm their connection with one untimed request first (a proxy's pool to Glance is warm).

    python -m bench.walk glance --base http://127.0.0.1:8080 --page-size 1000
    python -m bench.walk shim --url http://127.0.0.1:8774/v2.1/<p>/images/detail
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import aiohttp
import orjson

from bench.loops import loop_factory

_HEADERS = {"X-Auth-Token": "bench", "Accept": "application/json"}
_TIMEOUT = aiohttp.ClientTimeout(total=300.0, connect=5.0)


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def walk_glance(base: str, page_size: int) -> dict[str, object]:
    images = 0
    pages = 0
    first_page = 0.0
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), timeout=_TIMEOUT
    ) as session:
        async with session.get(f"{base}/v2/schemas/image", headers=_HEADERS) as warm:
            await warm.read()  # a warm connection, as a proxy's pooled one would be
        start = time.perf_counter()
        url: str | None = f"{base}/v2/images?limit={page_size}"
        while url is not None:
            async with session.get(url, headers=_HEADERS) as response:
                if response.status != 200:
                    return {"error": f"HTTP {response.status} for {url}"}
                body = await response.read()
            page = orjson.loads(body)
            pages += 1
            images += len(page["images"])
            if pages == 1:
                first_page = time.perf_counter() - start
            link = page.get("next")
            url = f"{base}{link}" if link else None
        total = time.perf_counter() - start
    return {
        "images": images,
        "pages": pages,
        "first_page_ms": first_page * 1000,
        "mean_page_ms": total / pages * 1000,
        "total_s": total,
        "client_peak_rss_mb": _peak_rss_mb(),
    }


async def fetch_unpaged(url: str, warm_url: str | None) -> dict[str, object]:
    chunks: list[bytes] = []
    first_byte = 0.0
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), timeout=_TIMEOUT
    ) as session:
        try:
            if warm_url:
                async with session.get(warm_url, headers=_HEADERS) as warm:
                    await warm.read()
            start = time.perf_counter()
            async with session.get(url, headers=_HEADERS) as response:
                headers_at = time.perf_counter() - start
                status = response.status
                async for chunk in response.content.iter_any():
                    if not chunks:
                        first_byte = time.perf_counter() - start
                    chunks.append(chunk)
        except aiohttp.ClientError as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        total = time.perf_counter() - start
    body = b"".join(chunks)
    if status != 200:
        return {"error": f"HTTP {status}: {body[:200]!r}"}
    try:
        images = len(orjson.loads(body)["images"])
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        return {"error": f"unparsable body ({len(body)} bytes): {exc}"}
    return {
        "images": images,
        "bytes": len(body),
        "headers_ms": headers_at * 1000,
        "first_byte_ms": first_byte * 1000,
        "total_s": total,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    glance = sub.add_parser("glance", help="walk Glance pages directly")
    glance.add_argument("--base", required=True)
    glance.add_argument("--page-size", type=int, default=1000)
    shim = sub.add_parser("shim", help="one unpaged GET from the shim")
    shim.add_argument("--url", required=True)
    shim.add_argument("--warm-url", help="fetched first on the same connection, untimed")
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    args = parser.parse_args(argv)
    factory, _ = loop_factory(args.loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        if args.mode == "glance":
            result = runner.run(walk_glance(args.base.rstrip("/"), args.page_size))
        else:
            result = runner.run(fetch_unpaged(args.url, args.warm_url))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
