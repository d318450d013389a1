"""Thin handlers for the image metadata routes (SPEC §7, NOVA_IMAGE_API.md §7).

Order of checks, as Nova: body schema → (item PUT: body/URI key match) → image read →
merge → quota → one Glance JSON-Patch holding only the property changes (D5). Keys that
are Glance core attributes, or reserved ``os_glance_*`` names, are refused with a 400
naming the key (D6). Query parameters are ignored (D7).

A write is one read and one PATCH; Glance has no conditional PATCH, so a concurrent writer
between the two can be overwritten (README, "Metadata writes").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson
from aiohttp import web

from shim.faults import BadRequest, Forbidden, ItemNotFound
from shim.legacy.call import LegacyCall, LegacyHandler, json_response
from shim.legacy.metadata_schema import validate_item, validate_metadata
from shim.legacy.paths import Action
from shim.legacy.views import ImageSchema, to_nova_metadata

RESERVED_PREFIX: Final = "os_glance_"
QUOTA_MESSAGE: Final = "Image metadata limit exceeded"


async def show_metadata(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    metadata, _ = await _current(call)
    return json_response(orjson.dumps({"metadata": metadata}))


async def show_item(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    metadata, _ = await _current(call)
    key = call.target.key or ""
    if key not in metadata:
        raise ItemNotFound()
    return json_response(orjson.dumps({"meta": {key: metadata[key]}}))


async def merge_metadata(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    """POST: merge into the image's properties; answer with all of them, as stored."""
    changes = validate_metadata(call.body, legacy_v2=call.target.prefix == "v2")
    metadata, schema = await _current(call, changes)
    _check_quota(call, {**metadata, **changes})
    image = await call.glance.patch(call.caller, call.image_id, _set_ops(changes))
    return json_response(orjson.dumps({"metadata": to_nova_metadata(image, schema)}))


async def replace_metadata(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    """PUT: the request's set becomes the image's whole metadata; echoed back."""
    wanted = validate_metadata(call.body, legacy_v2=call.target.prefix == "v2")
    metadata, _ = await _current(call, wanted)
    _check_quota(call, wanted)
    ops = [_remove(key) for key in metadata if key not in wanted]
    ops += _set_ops({k: v for k, v in wanted.items() if metadata.get(k) != v or k not in metadata})
    if ops:
        await call.glance.patch(call.caller, call.image_id, ops)
    return json_response(orjson.dumps({"metadata": wanted}))


async def update_item(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    """PUT one key: body ``{"meta": {key: value}}`` with the URL's key; echoed back."""
    meta = validate_item(call.body, legacy_v2=call.target.prefix == "v2")
    if call.target.key not in meta:
        raise BadRequest("Request body and URI mismatch")
    metadata, _ = await _current(call, meta)
    _check_quota(call, {**metadata, **meta})
    await call.glance.patch(call.caller, call.image_id, _set_ops(meta))
    return json_response(orjson.dumps({"meta": meta}))


async def delete_item(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    metadata, _ = await _current(call)
    key = call.target.key or ""
    if key not in metadata:
        raise ItemNotFound("Invalid metadata key")
    await call.glance.patch(call.caller, call.image_id, [_remove(key)])
    response = web.Response(status=204)
    response.headers["Content-Type"] = "application/json"
    return response


async def _current(
    call: LegacyCall, changes: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], ImageSchema]:
    """The image's metadata as Nova shows it, after refusing core or reserved keys."""
    schema = await call.glance.schema(call.caller)
    for key in changes or ():
        if key in schema.base or key.startswith(RESERVED_PREFIX):
            raise BadRequest(
                f"Metadata key '{key}' is a core image attribute or reserved by Glance "
                "and cannot be changed through the compute API."
            )
    image = await call.glance.show(call.caller, call.image_id, op="metadata")
    return to_nova_metadata(image, schema), schema


def _check_quota(call: LegacyCall, metadata: Mapping[str, Any]) -> None:
    limit = call.settings.metadata_items
    if metadata and limit >= 0 and len(metadata) > limit:
        raise Forbidden(QUOTA_MESSAGE)


def _pointer(key: str) -> str:
    # RFC 6901: "~" and "/" are escaped inside a JSON pointer segment.
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _set_ops(values: Mapping[str, str]) -> list[dict[str, Any]]:
    # "add" creates or overwrites a property (Glance answers 409 to "replace" of a
    # missing one), so it is right whether or not the key exists.
    return [{"op": "add", "path": _pointer(key), "value": value} for key, value in values.items()]


def _remove(key: str) -> dict[str, Any]:
    return {"op": "remove", "path": _pointer(key)}


HANDLERS: Final[dict[Action, LegacyHandler]] = {
    "meta_index": show_metadata,
    "meta_show": show_item,
    "meta_create": merge_metadata,
    "meta_update_all": replace_metadata,
    "meta_update": update_item,
    "meta_delete": delete_item,
}
