"""Every typed application and request key (no ``str`` keys: aiohttp warns on them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from shim.catalog import EndpointCache
from shim.glance import GlanceClient
from shim.legacy.render import Renderer
from shim.settings import Settings

if TYPE_CHECKING:
    from shim.access import RequestRecord
    from shim.keystone import Keystone


@dataclass(slots=True)
class Runtime:
    """Mutable process state read by /readyz (the app's mapping is frozen once started)."""

    session_open: bool = False
    draining: bool = False


SETTINGS = web.AppKey("settings", Settings)
SESSION = web.AppKey("session", aiohttp.ClientSession)
NOVA_SESSION = web.AppKey("nova_session", aiohttp.ClientSession)
GLANCE = web.AppKey("glance", GlanceClient)
RUNTIME = web.AppKey("runtime", Runtime)

REQUEST_ID = web.RequestKey("request_id", str)
PASSTHROUGH = web.RequestKey("passthrough", bool)
RESPONSE_HEADERS = web.RequestKey("response_headers", tuple[tuple[str, str], ...])
GLANCE_LINK_BASE = web.AppKey("glance_link_base", str)
RENDERER = web.AppKey("renderer", Renderer)  # SHIM_RENDERER, resolved once
# keystone mode: token validation, and the Glance clients found in tokens' catalogues.
KEYSTONE: web.AppKey[Keystone] = web.AppKey("keystone")
GLANCE_CLIENTS = web.AppKey("glance_clients", EndpointCache[GlanceClient])
# observability: the request's access record, and the legacy routes' deprecation headers.
OBSERVED: web.RequestKey[RequestRecord] = web.RequestKey("observed")
DEPRECATION_HEADERS = web.AppKey("deprecation_headers", tuple[tuple[str, str], ...])
