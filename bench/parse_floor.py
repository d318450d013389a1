"""Floor (c): fetch the Glance answer, parse it with orjson, serialise it again, return it.

No translation: the cheapest thing a proxy that must read Glance's JSON can do, with the same
JSON library the shim uses. The shim's own translation is measured against this.

    python -m bench.parse_floor --upstream http://127.0.0.1:8080 --listen 127.0.0.1:8092
"""

from __future__ import annotations

import orjson
from aiohttp import web
from yarl import URL

from bench.serving import SESSION, UPSTREAM, serve_floor, upstream_headers


async def parse_and_serialise(request: web.Request) -> web.Response:
    url = URL(request.app[UPSTREAM] + request.raw_path, encoded=True)
    async with request.app[SESSION].get(url, headers=upstream_headers(request)) as upstream:
        status = upstream.status
        body = await upstream.read()
    document = orjson.loads(body)
    return web.Response(body=orjson.dumps(document), status=status, content_type="application/json")


def main(argv: list[str] | None = None) -> None:
    serve_floor(__doc__ or "", parse_and_serialise, decompress=True, argv=argv)


if __name__ == "__main__":
    main()
