"""Version discovery documents for standalone mode (no Nova upstream).

Owns the bytes of ``GET /``, ``/v2``, ``/v2/``, ``/v2.1`` and ``/v2.1/`` exactly as Nova 34
serves them (docs/nova.md appendix A): same key order, same ``json.dumps`` spacing,
same ``updated`` stamps, media type ``application/json``, status 200. Only the host in the
links and the advertised maximum differ: 2.35 with the microversion cap on (every image
route works there), else the configured maximum (docs/contract.md §2).

The document builders are pure; :func:`discovery_handler` only picks one for a request. With
a Nova upstream these paths are passed through instead, and Nova answers them.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from shim.legacy.links import public_base
from shim.legacy.microversion import IMAGES_MAX, Version, requested_version, version_headers
from shim.settings import Settings

MEDIA_TYPE: Final = "application/json"
MIN_VERSION: Final = "2.1"
# Nova's MAX_PROXY_API_SUPPORT_VERSION: the image routes' ceiling.
V20_UPDATED: Final = "2025-07-04T12:00:00Z"
V21_UPDATED: Final = "2013-07-23T11:33:21Z"
DESCRIBED_BY: Final = {
    "rel": "describedby",
    "type": "text/html",
    "href": "http://docs.openstack.org/",
}
_V2_PATHS: Final = frozenset({"/v2", "/v2/"})
_V21_PATHS: Final = frozenset({"/v2.1", "/v2.1/"})


def _dumps(document: dict[str, Any]) -> bytes:
    # Nova renders with the stdlib's default separators; orjson's compact form would differ.
    return json.dumps(document).encode()


def _v20(base: str) -> dict[str, Any]:
    return {
        "id": "v2.0",
        "status": "DEPRECATED",
        "version": "",
        "min_version": "",
        "updated": V20_UPDATED,
        "links": [{"rel": "self", "href": f"{base.rstrip('/')}/v2/"}],
    }


def _v21(base: str, max_version: str) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": max_version,
        "min_version": MIN_VERSION,
        "updated": V21_UPDATED,
        "links": [{"rel": "self", "href": f"{base.rstrip('/')}/v2.1/"}],
    }


def root_document(base: str, max_version: str) -> bytes:
    """``GET /``: both versions, ``base`` being ``scheme://host[:port][/prefix]``."""
    return _dumps({"versions": [_v20(base), _v21(base, max_version)]})


def v2_document(base: str) -> bytes:
    """``GET /v2`` and ``/v2/``."""
    version = _v20(base)
    version["links"].append(DESCRIBED_BY)
    version["media-types"] = [
        {"base": MEDIA_TYPE, "type": "application/vnd.openstack.compute+json;version=2"}
    ]
    return _dumps({"version": version})


def v21_document(base: str, max_version: str) -> bytes:
    """``GET /v2.1`` and ``/v2.1/``; ``version`` is the advertised maximum."""
    version = _v21(base, max_version)
    version["links"].append(DESCRIBED_BY)
    version["media-types"] = [
        {"base": MEDIA_TYPE, "type": "application/vnd.openstack.compute+json;version=2.1"}
    ]
    return _dumps({"version": version})


def advertised_max_version(settings: Settings, max_version: Version) -> str:
    """2.35 with the cap on (never above the configured maximum), else the maximum."""
    if settings.microversion_cap == "nova":
        return str(min(IMAGES_MAX, max_version))
    return str(max_version)


async def discovery_handler(
    request: web.Request, settings: Settings, max_version: Version
) -> web.Response | None:
    """The version document for a discovery path, or None for any other request."""
    if request.method not in ("GET", "HEAD"):
        return None
    path = request.rel_url.raw_path
    if path == "/":
        body = root_document(
            public_base(request, settings), advertised_max_version(settings, max_version)
        )
        return web.Response(body=body, content_type=MEDIA_TYPE)
    if path in _V2_PATHS:
        return web.Response(
            body=v2_document(public_base(request, settings)), content_type=MEDIA_TYPE
        )
    if path in _V21_PATHS:
        # Nova parses the microversion here as on any v2.1 route: 400/406 for a bad one,
        # else the requested version echoed, with Vary twice (nova.md §2.2-2.3).
        version = requested_version(request.headers.items(), max_version)
        body = v21_document(
            public_base(request, settings), advertised_max_version(settings, max_version)
        )
        response = web.Response(body=body, content_type=MEDIA_TYPE)
        for name, value in version_headers(version):
            response.headers.add(name, value)
        return response
    return None
