"""The resolved legacy request every image and metadata handler receives."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from shim.glance import Caller, GlanceClient
from shim.legacy.microversion import Version
from shim.legacy.negotiation import JSON
from shim.legacy.paths import LegacyTarget
from shim.settings import Settings


@dataclass(frozen=True, slots=True)
class LegacyCall:
    """Everything a handler needs about the request, resolved once by `serve_legacy`."""

    target: LegacyTarget
    version: Version
    caller: Caller
    settings: Settings
    glance: GlanceClient
    body: Any = None
    content_type: str = JSON
    glance_link_base: str = ""  # base of alternate links (see routes.image_service)

    @property
    def image_id(self) -> str:
        # Every route that reaches a per-image handler has an id segment.
        return self.target.image_id or ""


LegacyHandler = Callable[[web.Request, LegacyCall], Awaitable[web.StreamResponse]]


def json_response(body: bytes, call: LegacyCall, status: int = 200) -> web.Response:
    """A success in the negotiated type (``application/json`` unless the client prefers
    Nova's vendor type), without a charset, as Nova answers."""
    response = web.Response(body=body, status=status)
    response.headers["Content-Type"] = call.content_type
    return response
