"""Every typed application and request key (no ``str`` keys: aiohttp warns on them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from shim.settings import Settings

if TYPE_CHECKING:
    from shim.glance import GlanceClient

SETTINGS = web.AppKey("settings", Settings)
SESSION = web.AppKey("session", aiohttp.ClientSession)
GLANCE = web.AppKey("glance", "GlanceClient")
DRAINING = web.AppKey("draining", bool)

REQUEST_ID = web.RequestKey("request_id", str)
