"""Wire formats of the legacy image routes: Glance v2 image records and Nova image views.

This module owns only type declarations (``Literal`` aliases and ``TypedDict`` shapes) that
the pure translators and the handlers share. It holds no logic and imports nothing from
aiohttp. The translators return plain ``dict[str, Any]`` (what ``orjson.dumps`` takes);
these shapes document exactly which keys those dicts carry and let handlers and tests
narrow them.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Action = Literal[
    "index",
    "detail",
    "show",
    "delete",
    "meta_index",
    "meta_create",
    "meta_update_all",
    "meta_show",
    "meta_update",
    "meta_delete",
]
"""The Nova controller method a legacy request is routed to (docs/nova.md §1.1)."""

Prefix = Literal["v2", "v2.1"]

NovaStatus = Literal["ACTIVE", "SAVING", "DELETED", "ERROR", "UNKNOWN"]
"""The five image statuses Nova shows (nova.md §4.2; tempest's enum)."""

GlanceStatus = Literal[
    "queued",
    "saving",
    "uploading",
    "importing",
    "active",
    "deactivated",
    "killed",
    "deleted",
    "pending_delete",
]


class Link(TypedDict):
    rel: str
    href: str


class AlternateLink(TypedDict):
    rel: Literal["alternate"]
    type: Literal["application/vnd.openstack.image"]
    href: str


class ServerRef(TypedDict):
    """``server`` of a snapshot: the instance it came from (nova.md §4.4)."""

    id: str
    links: list[Link]


class GlanceImage(TypedDict, total=False):
    """A Glance v2 image record as ``GET /v2/images[/{id}]`` returns it.

    Only the attributes the translators read are listed; every other key is a custom
    property (a string, or null for nullable schema properties).
    """

    id: str
    name: str | None
    status: str
    size: int | None
    min_ram: int | None
    min_disk: int | None
    created_at: str | None
    updated_at: str | None
    visibility: str
    instance_uuid: str | None
    auto_disk_config: str | None
    block_device_mapping: str | None
    mappings: str | None


class GlanceImageList(TypedDict):
    """One page of ``GET /v2/images``."""

    images: list[GlanceImage]
    next: NotRequired[str]
    first: NotRequired[str]
    schema: NotRequired[str]


class GlanceSchemaProperty(TypedDict, total=False):
    is_base: bool


class GlanceImageSchema(TypedDict, total=False):
    """``GET /v2/schemas/image``: a JSON schema whose ``properties`` carry ``is_base``."""

    name: str
    properties: dict[str, GlanceSchemaProperty]


# Nova's keys contain ':' and '-', so these shapes use the functional syntax.
NovaImage = TypedDict(
    "NovaImage",
    {
        "id": str,
        "name": str | None,
        "minRam": int,
        "minDisk": int,
        "metadata": dict[str, Any],
        "created": str | None,
        "updated": str | None,
        "status": NovaStatus,
        "progress": int,
        "OS-EXT-IMG-SIZE:size": int,
        "links": list[Link | AlternateLink],
        "server": NotRequired[ServerRef],
        "OS-DCF:diskConfig": NotRequired[Literal["AUTO", "MANUAL"]],
    },
)
"""A detailed image (show and detail items), keys in Nova's order (nova.md §4.1)."""


class NovaImageBasic(TypedDict):
    """An item of the basic list ``GET /images`` (nova.md §4.5)."""

    id: str
    name: str | None
    links: list[Link | AlternateLink]


class NovaImageShow(TypedDict):
    image: NovaImage


class NovaImageList(TypedDict):
    images: list[NovaImage] | list[NovaImageBasic]
    images_links: NotRequired[list[Link]]


class NovaMetadata(TypedDict):
    metadata: dict[str, Any]


class NovaMeta(TypedDict):
    meta: dict[str, Any]
