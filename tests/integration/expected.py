"""What current Nova answers for a Glance image, written from docs/nova.md §4 and §5.

This is the tests' oracle, kept deliberately apart from ``shim.legacy.views``: it is
spelled out from the reference tables (field list of nova.md §4.1, status table of §4.2,
base properties of §5) rather than sharing code with what it checks.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Final

from tests.stack.catalogue import VOLUME_SNAPSHOT_ID

# nova.md §4.2, row by row: the Glance statuses, Nova's status, progress; any other is
# ("UNKNOWN", 0).
STATUS_TABLE: Final = (
    (("active",), "ACTIVE", 100),
    (("queued",), "SAVING", 25),
    (("saving",), "SAVING", 50),
    (("deleted", "pending_delete"), "DELETED", 0),
    (("killed",), "ERROR", 0),
)
STATUS: Final = {
    glance: (nova, progress)
    for glance_statuses, nova, progress in STATUS_TABLE
    for glance in glance_statuses
}
# nova.md §5: Glance 33's base properties, none of which reach `metadata`.
HIDDEN: Final = frozenset(
    {
        "id", "name", "status", "size", "min_ram", "min_disk", "created_at", "updated_at",
        "visibility", "protected", "os_hidden", "checksum", "os_hash_algo", "os_hash_value",
        "owner", "virtual_size", "container_format", "disk_format", "tags", "direct_url",
        "locations", "self", "file", "schema", "stores",
    }
)  # fmt: skip
TRUE_WORDS: Final = frozenset({"1", "t", "true", "on", "y", "yes"})
# The block device mapping of the catalogue's volume-backed snapshot (tests/stack/catalogue.py),
# decoded as Nova shows it in `metadata` (nova.md §5).
SNAPSHOT_BDM: Final = [
    {
        "boot_index": 0,
        "source_type": "snapshot",
        "destination_type": "volume",
        "device_name": "/dev/vda",
        "volume_size": 1,
        "delete_on_termination": True,
        "snapshot_id": VOLUME_SNAPSHOT_ID,
        "tag": None,
    }
]


def metadata(image: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in image.items():
        if key in HIDDEN:
            continue
        if key in ("block_device_mapping", "mappings") and isinstance(value, str):
            with contextlib.suppress(ValueError):  # docs/contract.md D3: the raw string stays
                value = json.loads(value)
        result[key] = value
    return result


def links(image_id: str, base: str, version: str, project: str | None, glance: str) -> list[Any]:
    scope = f"/{project}" if project else ""
    return [
        {"rel": "self", "href": f"{base}/{version}{scope}/images/{image_id}"},
        {"rel": "bookmark", "href": f"{base}{scope}/images/{image_id}"},
        {
            "rel": "alternate",
            "type": "application/vnd.openstack.image",
            "href": f"{glance}/images/{image_id}",
        },
    ]


def detail(
    image: dict[str, Any], base: str, version: str, project: str | None, glance: str
) -> dict[str, Any]:
    status, progress = STATUS.get(image.get("status", ""), ("UNKNOWN", 0))
    view: dict[str, Any] = {
        "id": image["id"],
        "name": image.get("name"),
        "minRam": image.get("min_ram") or 0,
        "minDisk": image.get("min_disk") or 0,
        "metadata": metadata(image),
        "created": image["created_at"],
        "updated": image["updated_at"],
        "status": status,
        "progress": progress,
        "OS-EXT-IMG-SIZE:size": image.get("size") or 0,
        "links": links(image["id"], base, version, project, glance),
    }
    server = image.get("instance_uuid")
    if server is not None:
        scope = f"/{project}" if project else ""
        view["server"] = {
            "id": server,
            "links": [
                {"rel": "self", "href": f"{base}/{version}{scope}/servers/{server}"},
                {"rel": "bookmark", "href": f"{base}{scope}/servers/{server}"},
            ],
        }
    disk_config = image.get("auto_disk_config")
    if disk_config is not None:
        view["OS-DCF:diskConfig"] = (
            "AUTO" if str(disk_config).strip().lower() in TRUE_WORDS else "MANUAL"
        )
    return view


def basic(
    image: dict[str, Any], base: str, version: str, project: str | None, glance: str
) -> dict[str, Any]:
    return {
        "id": image["id"],
        "name": image.get("name"),
        "links": links(image["id"], base, version, project, glance),
    }
