"""Where links point: the shim's public URL, or the caller's view of it.

Self, bookmark and next links start at ``SHIM_PUBLIC_URL`` when set (Nova's
``compute_link_prefix``); otherwise at the request's scheme and host, where
``Forwarded``/``X-Forwarded-*`` count only from ``SHIM_TRUSTED_PROXIES`` (docs/contract.md §4).
"""

from __future__ import annotations

from aiohttp import web

from shim.headers import client_scheme_host, is_trusted, link_base
from shim.keys import SETTINGS
from shim.legacy.views import LinkContext, link_context
from shim.settings import Settings


def public_base(request: web.Request, settings: Settings) -> str:
    if settings.public_url is not None:
        return link_base(settings.public_url, request.scheme, request.host)
    peer = request.remote
    if not is_trusted(peer, settings.trusted_proxies):
        # forwarded fields never count
        return link_base(None, request.scheme, request.host)
    scheme, host = client_scheme_host(
        peer,
        list(request.headers.items()),
        request.scheme,
        request.host,
        settings.trusted_proxies,
    )
    return link_base(None, scheme, host)


def link_context_for(
    request: web.Request, prefix: str, project_id: str | None, glance_base: str
) -> LinkContext:
    return link_context(
        public_base(request, request.app[SETTINGS]), prefix, project_id, glance_base
    )
