"""Floor (b): a minimal aiohttp streaming passthrough. No JSON work at all.

The request path and query go to Glance unchanged, with the caller's token; status,
Content-Type and Content-Length come back, and the body is streamed chunk by chunk as it
arrives. Anything a proxy does beyond this costs more than this.

    python -m bench.passthrough_floor --upstream http://127.0.0.1:8080 --listen 127.0.0.1:8091
"""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from bench.serving import SESSION, UPSTREAM, serve_floor, upstream_headers


async def passthrough(request: web.Request) -> web.StreamResponse:
    url = URL(request.app[UPSTREAM] + request.raw_path, encoded=True)
    async with request.app[SESSION].get(url, headers=upstream_headers(request)) as upstream:
        response = web.StreamResponse(status=upstream.status)
        response.content_type = upstream.content_type
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client left mid-body (wrk closes its connections at the end of a run)
        return response


def main(argv: list[str] | None = None) -> None:
    serve_floor(__doc__ or "", passthrough, decompress=False, argv=argv)


if __name__ == "__main__":
    main()
