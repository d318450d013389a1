"""Canned Glance v2 answers: a deterministic image catalogue written as files nginx can serve.

Shape follows Glance 33 as recorded in docs/glance.md §1 (create, then upload): custom properties
first as top-level strings, then the base attributes, whole-second ``Z`` timestamps, ``stores``
once the image has data. List pages are rendered the way Glance renders them
(``json.dumps`` default separators): ``{"images": [...], "first": ..., "schema": ...,
"next": ...}`` with ``next`` present whenever the page is full (so the last page may be empty).
Default order is ``created_at`` descending, so image 0 is the newest.

Layout under the root directory:

    pages/<limit>/m_<marker>.json   one list page (marker empty for the first page)
    images/<id>.json                one image (show), for the first `SHOW_IMAGES` images
    schemas/image.json              the image schema (base properties + is_base:false extras)
    schemas/images.json             the collection schema
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

PROJECT_ID: Final = "9f2c4e1ab3d54f6e8a7b0c1d2e3f4a5b"
OTHER_OWNER: Final = "2b8e0d4c6a1f4e3d9c7b5a3f1e0d2c4b"
SHOW_IMAGES: Final = 2000
HOT_COVER: Final = 2000
_UUID_PATTERN: Final = (
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"
)
_EPOCH: Final = datetime(2026, 11, 27, 8, 0, 0, tzinfo=UTC)
_DISTROS: Final = (
    ("ubuntu", ("20.04", "22.04", "24.04")),
    ("debian", ("11", "12", "13")),
    ("rhel", ("8.10", "9.4")),
    ("centos", ("9-stream",)),
    ("windows", ("2019", "2022")),
)


@dataclass(frozen=True, slots=True)
class Catalogue:
    root: Path
    images: int
    image_ids: tuple[str, ...]
    limits: tuple[int, ...]
    walk_limits: tuple[int, ...]
    bytes_written: int

    def first_id(self, index: int = 0) -> str:
        return self.image_ids[index]


def _hex(rng: random.Random, nbytes: int) -> str:
    return rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_image(index: int, rng: random.Random) -> dict[str, object]:
    """One active Glance image record, keys in the order Glance's serializer emits them."""
    image_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    distro, versions = _DISTROS[index % len(_DISTROS)]
    version = versions[(index // len(_DISTROS)) % len(versions)]
    snapshot = index % 3 == 0
    created = _EPOCH - timedelta(seconds=37 * index + 11)
    updated = created + timedelta(seconds=rng.randint(5, 900))
    size = rng.randint(300, 20_000) * 1024 * 1024 + rng.randint(0, 1 << 20)
    props: dict[str, object] = {
        "hw_disk_bus": "scsi" if index % 4 == 0 else "virtio",
        "hw_qemu_guest_agent": "yes",
        "os_distro": distro,
        "os_version": version,
        "os_type": "windows" if distro == "windows" else "linux",
        "image_type": "snapshot" if snapshot else "image",
    }
    if snapshot:
        props["instance_uuid"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        props["user_id"] = _hex(rng, 16)
        if index % 6 == 0:
            props["bdm_v2"] = "True"
            props["root_device_name"] = "/dev/vda"
            props["block_device_mapping"] = json.dumps(
                [
                    {
                        "source_type": "snapshot",
                        "destination_type": "volume",
                        "boot_index": 0,
                        "delete_on_termination": True,
                        "snapshot_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        "volume_size": 20,
                        "device_name": "/dev/vda",
                        "disk_bus": "virtio",
                        "device_type": "disk",
                        "guest_format": None,
                        "volume_type": None,
                        "tag": None,
                        "image_id": None,
                        "no_device": None,
                        "volume_id": None,
                    }
                ]
            )
    name = (
        f"snap-{distro}-web-{index:06d}"
        if snapshot
        else f"{distro}-{version}-server-cloudimg-amd64-{index:06d}"
    )
    visibility = ("public", "private", "shared", "community")[index % 4]
    return {
        **props,
        "name": name,
        "disk_format": "raw" if index % 5 == 0 else "qcow2",
        "container_format": "bare",
        "visibility": visibility,
        "size": size,
        "virtual_size": size * 3,
        "status": "active",
        "checksum": _hex(rng, 16),
        "protected": index % 50 == 0,
        "min_ram": (0, 512, 1024, 2048)[index % 4],
        "min_disk": (0, 1, 10, 20)[index % 4],
        "owner": PROJECT_ID if index % 7 else OTHER_OWNER,
        "os_hidden": False,
        "os_hash_algo": "sha512",
        "os_hash_value": _hex(rng, 64),
        "id": image_id,
        "created_at": _stamp(created),
        "updated_at": _stamp(updated),
        "tags": [],
        "self": f"/v2/images/{image_id}",
        "file": f"/v2/images/{image_id}/file",
        "schema": "/v2/schemas/image",
        "stores": "fs",
    }


def _prop(type_: object, description: str, **extra: object) -> dict[str, object]:
    return {"type": type_, "description": description, **extra}


def image_schema() -> dict[str, object]:
    """`GET /v2/schemas/image`: Glance's base properties, then schema-image.json extras.

    Base = every property without ``is_base: false`` (glanceclient ``is_base_property``).
    """
    ro = {"readOnly": True}
    statuses = ["queued", "saving", "active", "killed", "deleted", "uploading", "importing"]
    statuses += ["pending_delete", "deactivated"]
    base: dict[str, object] = {
        "id": _prop("string", "An identifier for the image", pattern=_UUID_PATTERN),
        "name": _prop(["null", "string"], "Descriptive name for the image", maxLength=255),
        "status": _prop("string", "Status of the image", enum=statuses, **ro),
        "visibility": _prop(
            "string",
            "Scope of image accessibility",
            enum=["community", "public", "private", "shared"],
        ),
        "protected": _prop("boolean", "If true, image will not be deletable."),
        "os_hidden": _prop("boolean", "If true, image will not appear in default image list."),
        "checksum": _prop(["null", "string"], "md5 hash of image contents.", maxLength=32, **ro),
        "os_hash_algo": _prop(
            ["null", "string"], "Algorithm to calculate the os_hash_value", maxLength=64, **ro
        ),
        "os_hash_value": _prop(
            ["null", "string"], "Hexdigest of the image contents", maxLength=128, **ro
        ),
        "owner": _prop(["null", "string"], "Owner of the image", maxLength=255),
        "size": _prop(["null", "integer"], "Size of image file in bytes", **ro),
        "virtual_size": _prop(["null", "integer"], "Virtual size of image in bytes", **ro),
        "container_format": _prop(
            ["null", "string"],
            "Format of the container",
            enum=[None, "ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"],
        ),
        "disk_format": _prop(
            ["null", "string"],
            "Format of the disk",
            enum=[None, "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso"],
        ),
        "created_at": _prop("string", "Date and time of image registration", **ro),
        "updated_at": _prop("string", "Date and time of the last image modification", **ro),
        "tags": _prop(
            "array",
            "List of strings related to the image",
            items={"type": "string", "maxLength": 255},
        ),
        "direct_url": _prop("string", "URL to access the image file kept in external store", **ro),
        "min_ram": _prop("integer", "Amount of ram (in MB) required to boot image."),
        "min_disk": _prop("integer", "Amount of disk space (in GB) required to boot image."),
        "self": _prop("string", "An image self url", **ro),
        "file": _prop("string", "An image file url", **ro),
        "stores": _prop("string", "Store in which image data resides.", **ro),
        "schema": _prop("string", "An image schema url", **ro),
        "locations": _prop(
            "array",
            "A set of URLs to access the image file kept in external store",
            items={
                "type": "object",
                "properties": {
                    "url": {"type": "string", "maxLength": 255},
                    "metadata": {"type": "object"},
                    "validation_data": {"type": "object"},
                },
                "required": ["url", "metadata"],
            },
        ),
    }
    extras = {
        "kernel_id": "ID of image stored in Glance that should be used as the kernel",
        "ramdisk_id": "ID of image stored in Glance that should be used as the ramdisk",
        "instance_uuid": "Metadata which can be used to record which instance this image is "
        "associated with. (Informational only, does not create an instance snapshot.)",
        "architecture": "Operating system architecture as specified in "
        "https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html",
        "os_distro": "Common name of operating system distribution",
        "os_version": "Operational version of operating system",
        "description": "A human-readable string describing this image.",
        "cinder_encryption_key_id": "Identifier in the OpenStack Key Management Service for "
        "the encryption key for the Block Storage Service to use when mounting a volume",
        "cinder_encryption_key_deletion_policy": "States the condition under which the Image "
        "Service will delete the object associated with the 'cinder_encryption_key_id'",
    }
    properties = dict(base)
    for key, text in extras.items():
        properties[key] = {"type": ["null", "string"], "description": text, "is_base": False}
    return {
        "name": "image",
        "properties": properties,
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


def _page(records: list[str], offset: int, limit: int, ids: list[str]) -> tuple[str, str]:
    """(marker, body) of the page that starts at *offset*."""
    items = records[offset : offset + limit]
    marker = ids[offset - 1] if offset else ""
    parts = [
        '{"images": [',
        ", ".join(items),
        f'], "first": "/v2/images?limit={limit}", "schema": "/v2/schemas/images"',
    ]
    if len(items) == limit:
        parts.append(f', "next": "/v2/images?limit={limit}&marker={ids[offset + limit - 1]}"')
    parts.append("}")
    return marker, "".join(parts)


def write_catalogue(
    root: Path, images: int, limits: Iterable[int], walk_limits: Iterable[int], seed: int = 6
) -> Catalogue:
    """Write every page nginx will serve.

    *limits* get pages covering the first `HOT_COVER` images (enough for one request plus a
    few follow-ups); *walk_limits* get pages over the whole catalogue, for unpaged walks.
    """
    rng = random.Random(seed)
    records: list[str] = []
    ids: list[str] = []
    written = 0
    for index in range(images):
        image = make_image(index, rng)
        ids.append(str(image["id"]))
        records.append(json.dumps(image, ensure_ascii=False))
    show_dir = root / "images"
    show_dir.mkdir(parents=True, exist_ok=True)
    for image_id, record in zip(ids[:SHOW_IMAGES], records, strict=False):
        written += (show_dir / f"{image_id}.json").write_text(record, encoding="utf-8")
    hot = sorted(set(limits))
    walk = sorted(set(walk_limits))
    for limit in sorted(set(hot) | set(walk)):
        cover = images if limit in walk else min(images, HOT_COVER)
        page_dir = root / "pages" / str(limit)
        page_dir.mkdir(parents=True, exist_ok=True)
        for offset in range(0, cover + 1, limit):
            marker, body = _page(records, offset, limit, ids)
            written += (page_dir / f"m_{marker}.json").write_text(body, encoding="utf-8")
    schemas = root / "schemas"
    schemas.mkdir(parents=True, exist_ok=True)
    schema = image_schema()
    written += (schemas / "image.json").write_text(json.dumps(schema), encoding="utf-8")
    collection = {
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": schema},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }
    written += (schemas / "images.json").write_text(json.dumps(collection), encoding="utf-8")
    # What the shim's start-up check reads to recognise Glance (Glance's GET /versions, trimmed).
    versions = {"versions": [{"id": "v2.17", "status": "CURRENT", "links": []}]}
    written += (root / "versions.json").write_text(json.dumps(versions), encoding="utf-8")
    return Catalogue(root, images, tuple(ids[:SHOW_IMAGES]), tuple(hot), tuple(walk), written)
