"""Thin handlers for the image metadata routes (docs/contract.md §7, docs/nova.md §7).

Order of checks, as Nova: body schema → (item PUT: body/URI key match) → refusal of core
and reserved keys (contract.md D6) → image read → merge → quota → one Glance JSON-Patch holding only
the property changes (contract.md D5). Query parameters are ignored (contract.md D7).

How each verb reaches Glance (one GET of the image, then at most one PATCH):

=========================  ========================================================
verb                       PATCH operations
=========================  ========================================================
POST .../metadata          ``add`` for each key of the request
PUT .../metadata           ``remove`` for each property not in the request (reserved
                           ``os_glance*`` properties are Glance's and stay), ``add``
                           for each key of the request
PUT .../metadata/{key}     ``add`` for the key
DELETE .../metadata/{key}  ``remove`` for the key
=========================  ========================================================

Keys are sent even when Glance already holds the value: Glance authorizes a PATCH only
when it has operations, and a write by someone who may not modify the image must fail
as it does in Nova. Only an empty operation list (``POST {"metadata": {}}``) sends no
PATCH. Name, visibility, sizes and every other core attribute are never part of a PATCH,
so shared and community images stay what they are (unlike Nova, which rewrote the whole
image and sent ``visibility=private``).
``block_device_mapping``/``mappings`` are JSON-decoded for display only; what Glance
holds is the JSON string a client wrote, never a re-encoding of it.

Glance has no conditional PATCH, so a write from another client between the read and
the PATCH can be overwritten (README, "Metadata writes").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson
from aiohttp import web

from shim.faults import BadRequest, Forbidden, ItemNotFound
from shim.legacy.call import LegacyCall, json_response
from shim.legacy.metadata_schema import validate_item, validate_metadata
from shim.legacy.views import ImageSchema, to_nova_metadata

# glance/api/common.py GLANCE_RESERVED_NS: Glance refuses every name with this prefix
# (so ``os_glance_*``, and ``os_glancefoo`` too) with a 403 "Attribute ... is reserved."
RESERVED_PREFIX: Final = "os_glance"
# glance/api/v2/images.py RequestDeserializer._reserved_properties: not in the image
# schema, refused by Glance like the prefix above.
RESERVED_NAMES: Final = frozenset({"location", "deleted", "deleted_at"})
QUOTA_MESSAGE: Final = "Image metadata limit exceeded"


async def show_metadata(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    image, schema = await _read(call)
    return json_response(orjson.dumps({"metadata": to_nova_metadata(image, schema)}), call)


async def show_item(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    image, schema = await _read(call)
    metadata = to_nova_metadata(image, schema)
    key = call.target.key or ""
    if key not in metadata:
        raise ItemNotFound()
    return json_response(orjson.dumps({"meta": {key: metadata[key]}}), call)


async def merge_metadata(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    """POST: merge into the image's properties; answer with all of them, as stored."""
    changes = validate_metadata(call.body, legacy_v2=call.target.prefix == "v2")
    image, schema = await _read(call, changes)
    _check_quota(call, {**to_nova_metadata(image, schema), **changes})
    if changes:
        image = await call.glance.patch(call.caller, call.image_id, _set_ops(changes))
    return json_response(orjson.dumps({"metadata": to_nova_metadata(image, schema)}), call)


async def replace_metadata(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    """PUT: the request's set becomes the image's whole metadata; echoed back."""
    wanted = validate_metadata(call.body, legacy_v2=call.target.prefix == "v2")
    image, schema = await _read(call, wanted)
    _check_quota(call, wanted)
    ops = [
        _remove(key)
        for key in to_nova_metadata(image, schema)
        if key not in wanted and not _reserved(key)
    ]
    ops += _set_ops(wanted)
    if ops:
        await call.glance.patch(call.caller, call.image_id, ops)
    return json_response(orjson.dumps({"metadata": wanted}), call)


async def update_item(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    """PUT one key: body ``{"meta": {key: value}}`` with the URL's key; echoed back."""
    meta = validate_item(call.body, legacy_v2=call.target.prefix == "v2")
    if call.target.key not in meta:
        raise BadRequest("Request body and URI mismatch")
    image, schema = await _read(call, meta)
    _check_quota(call, {**to_nova_metadata(image, schema), **meta})
    await call.glance.patch(call.caller, call.image_id, _set_ops(meta))
    return json_response(orjson.dumps({"meta": meta}), call)


async def delete_item(request: web.Request, call: LegacyCall) -> web.StreamResponse:
    key = call.target.key or ""
    image, schema = await _read(call, (key,))
    if key not in to_nova_metadata(image, schema):
        raise ItemNotFound("Invalid metadata key")
    await call.glance.patch(call.caller, call.image_id, [_remove(key)])
    response = web.Response(status=204)
    # Nova labels its empty 204 as JSON too (nova.md §2.3).
    response.headers["Content-Type"] = call.content_type
    return response


async def _read(call: LegacyCall, names: Iterable[str] = ()) -> tuple[dict[str, Any], ImageSchema]:
    """The Glance image and schema, after refusing any core or reserved key in *names*.

    The refusal comes before the image read, like Nova's schema validation, so it says
    nothing about whether the image exists.
    """
    schema = await call.glance.schema(call.caller)
    for key in names:
        if _reserved(key):
            raise BadRequest(
                f"Metadata key '{key}' is reserved by the image service and cannot be "
                "changed through the compute API."
            )
        if key in schema.base:
            raise BadRequest(
                f"Metadata key '{key}' is a core image attribute and cannot be changed "
                "through the compute API."
            )
    image = await call.glance.show(call.caller, call.image_id, op="metadata")
    return image, schema


def _reserved(key: str) -> bool:
    return key.startswith(RESERVED_PREFIX) or key in RESERVED_NAMES


def _check_quota(call: LegacyCall, metadata: Mapping[str, Any]) -> None:
    # Nova's check_img_metadata_properties_quota: nothing for an empty set; -1 unlimited.
    limit = call.settings.metadata_items
    if metadata and limit >= 0 and len(metadata) > limit:
        raise Forbidden(QUOTA_MESSAGE)


def _pointer(key: str) -> str:
    # RFC 6901: "~" and "/" are escaped inside a JSON pointer segment ("" is "/").
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _set_ops(values: Mapping[str, str]) -> list[dict[str, Any]]:
    # "add" creates or overwrites a property (Glance answers 409 to "replace" of a
    # missing one), so it is right whether or not the key exists.
    return [{"op": "add", "path": _pointer(key), "value": value} for key, value in values.items()]


def _remove(key: str) -> dict[str, Any]:
    return {"op": "remove", "path": _pointer(key)}
