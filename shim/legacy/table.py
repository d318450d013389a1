"""The legacy image routes: one table, and everything that is derived from it.

Each row of `ROUTES` says, for one route: the method, the path template after
``/v2[.1][/{project_id}]``, Nova's controller action, the highest microversion Nova serves it
at (docs/nova.md §2.1), and the handler. From these rows alone come

* matching: `match_legacy` (a `shim.legacy.paths.Matcher`; rows are tried in order);
* the microversion range: `serve_legacy` refuses a route above its ``until`` (404);
* dispatch: `serve_legacy` calls the row's handler;
* metric and access-log labels: `route_label`, the prefix plus the template.

`serve_legacy` runs Nova's checks in Nova's order (docs/nova.md §1.2): token, route,
microversion (400/406), project id, the route's range (404), then the handler, which never
catches faults. Adding a route is adding a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import web

from shim.auth import authenticate, forget_rejected
from shim.faults import ItemNotFound, Unauthorized
from shim.glance import Caller
from shim.keys import MAX_VERSION, OBSERVED, REQUEST_ID, RESPONSE_HEADERS, SETTINGS
from shim.legacy import metadata, routes
from shim.legacy.call import LegacyCall, LegacyHandler
from shim.legacy.microversion import (
    IMAGES_MAX,
    METADATA_MAX,
    MIN_VERSION,
    Version,
    requested_version,
    route_allows,
    version_headers,
)
from shim.legacy.negotiation import negotiate
from shim.legacy.paths import LegacyTarget, Matcher
from shim.legacy.types import Action

LEGACY_NOT_FOUND_ROUTE: Final = "legacy_not_found"


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    action: Action
    until: Version
    handler: LegacyHandler


_IMAGE: Final = "/images/{image_id}"
_METADATA: Final = _IMAGE + "/metadata"
_KEY: Final = _METADATA + "/{key}"

ROUTES: Final[tuple[Route, ...]] = (
    Route("GET", "/images", "index", IMAGES_MAX, routes.list_basic),
    Route("GET", "/images/detail", "detail", IMAGES_MAX, routes.list_detail),
    Route("GET", _IMAGE, "show", IMAGES_MAX, routes.show_image),
    Route("DELETE", _IMAGE, "delete", IMAGES_MAX, routes.delete_image),
    Route("GET", _METADATA, "meta_index", METADATA_MAX, metadata.show_metadata),
    Route("POST", _METADATA, "meta_create", METADATA_MAX, metadata.merge_metadata),
    Route("PUT", _METADATA, "meta_update_all", METADATA_MAX, metadata.replace_metadata),
    Route("GET", _KEY, "meta_show", METADATA_MAX, metadata.show_item),
    Route("PUT", _KEY, "meta_update", METADATA_MAX, metadata.update_item),
    Route("DELETE", _KEY, "meta_delete", METADATA_MAX, metadata.delete_item),
)

BY_ACTION: Final[dict[Action, Route]] = {route.action: route for route in ROUTES}
match_legacy: Final = Matcher(ROUTES).match


def route_label(target: LegacyTarget) -> str:
    """A bounded label: ``/v2.1/{project_id}/images/{image_id}``, or ``legacy_not_found``."""
    if target.action is None:
        return LEGACY_NOT_FOUND_ROUTE
    project = "/{project_id}" if target.project_id else ""
    return f"/{target.prefix}{project}{BY_ACTION[target.action].template}"


async def serve_legacy(request: web.Request, target: LegacyTarget) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    identity = await authenticate(request)
    record = request.get(OBSERVED)
    if record is not None:
        record.note_identity(identity.project_id, identity.user_id)
    if target.action is None:
        raise ItemNotFound()
    route = BY_ACTION[target.action]
    version = MIN_VERSION
    if target.prefix == "v2.1":
        # /v2 ignores both microversion headers and answers none (docs/nova.md §2.4).
        version = requested_version(request.headers.items(), request.app[MAX_VERSION])
        request[RESPONSE_HEADERS] = version_headers(version)
    body = await routes.read_json_body(request) if request.method in ("POST", "PUT") else None
    identity.check_project(target.project_id)
    if not route_allows(route.until, version, settings.microversion_cap):
        raise ItemNotFound()
    glance, glance_link_base = routes.image_service(request.app, identity)
    call = LegacyCall(
        target=target,
        version=version,
        caller=Caller(token=identity.token, request_id=request[REQUEST_ID]),
        settings=settings,
        glance=glance,
        body=body,
        glance_link_base=glance_link_base,
        content_type=negotiate(request.headers.get("Accept")),
    )
    try:
        return await route.handler(request, call)
    except Unauthorized:
        forget_rejected(request.app, identity.token)
        raise
