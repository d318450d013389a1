"""Every typed application and request key (no ``str`` keys: aiohttp warns on them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from shim.catalog import EndpointCache
from shim.glance import GlanceClient
from shim.legacy.microversion import Version
from shim.legacy.paths import LegacyTarget
from shim.legacy.render import Renderer
from shim.record import RequestRecord
from shim.runtime import Runtime
from shim.settings import Settings

if TYPE_CHECKING:
    from shim.keystone import Keystone


SETTINGS = web.AppKey("settings", Settings)
SESSION = web.AppKey("session", aiohttp.ClientSession)
NOVA_SESSION = web.AppKey("nova_session", aiohttp.ClientSession)
GLANCE = web.AppKey("glance", GlanceClient)
RUNTIME = web.AppKey("runtime", Runtime)
# SHIM_MAX_MICROVERSION, parsed once when the app is created.
MAX_VERSION = web.AppKey("max_version", Version)

REQUEST_ID = web.RequestKey("request_id", str)
PASSTHROUGH = web.RequestKey("passthrough", bool)
RESPONSE_HEADERS = web.RequestKey("response_headers", tuple[tuple[str, str], ...])
GLANCE_LINK_BASE = web.AppKey("glance_link_base", str)
RENDERER = web.AppKey("renderer", Renderer)  # SHIM_RENDERER, resolved once
# keystone mode: token validation, and the Glance clients found in tokens' catalogues.
KEYSTONE: web.AppKey[Keystone] = web.AppKey("keystone")
GLANCE_CLIENTS = web.AppKey("glance_clients", EndpointCache[GlanceClient])
# observability: the request's access record, and the legacy routes' deprecation headers.
OBSERVED = web.RequestKey("observed", RequestRecord)
# The legacy image route a request matched: set once, by the outermost middleware.
LEGACY_TARGET = web.RequestKey("legacy_target", LegacyTarget)
DEPRECATION_HEADERS = web.AppKey("deprecation_headers", tuple[tuple[str, str], ...])
