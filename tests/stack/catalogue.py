"""The standard catalogue: a documented, deterministic-by-name set of images in the stack.

`seed_standard_catalogue(stack)` wipes Glance and creates every image of `SPECS` in
order (so ``created_at`` ascends in table order), through the API as the owning user,
falling back to the database only for statuses the API cannot produce. Image ids are uuid5 of
the label, so `image_id(label)` is known before seeding. It must not start servers.

Labels are image names, except the unnamed image (label `UNNAMED`). Owners: ``alice``
is project demo-a, ``bob`` demo-b, ``admin`` the admin project. Steps after create:

    upload            PUT 1 KiB..4 KiB of bytes (status active, size set)
    deactivate        POST actions/deactivate
    stage / import    PUT /stage (uploading); glance-direct import (active)
    share:<u>         member <u>'s project added and accepted; offer:<u> leaves it pending
    hide              os_hidden = true
    db:<status>       database UPDATE of status (row stays deleted=false)
    delete            DELETE through the API (deleted=1: GET 404, never listed)

Default Glance lists (``catalogue.listings``): alice 67 images (seven pages at a page
size of 10): her own except hidden-a, status-killed, status-unknown and deleted-via-api,
plus both public images and shared-b-accepted. dave (on demo-a) sees alice's 67, bob 6
(public-admin, public-admin-deactivated, private-b, shared-b-accepted, community-b,
shared-a-accepted), admin 68 (no community images, no killed/unknown), carol gets 403.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from tests.stack.info import StackInfo
from tests.stack.rest import JsonObject
from tests.stack.seed import GlanceApi, set_status, wipe

UNNAMED: Final = "<unnamed>"
UNKNOWN_STATUS: Final = "frobnicated"
PAGE_IMAGES: Final = 40
_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "nova-image-shim/tests/catalogue")
INSTANCE_UUID: Final = "8d2e3b9f-4c1a-4f7e-9b6d-2a5c8e1f0b37"
VOLUME_SNAPSHOT_ID: Final = "5f0c7a51-93e4-4b8e-a1d2-6c3b9e7f2a10"


def image_id(label: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, label))


@dataclass(frozen=True, slots=True)
class Spec:
    label: str
    owner: str
    fields: Mapping[str, object] = field(default_factory=dict)
    steps: tuple[str, ...] = ()


def _bdm() -> str:
    return (
        '[{"boot_index": 0, "source_type": "snapshot", "destination_type": "volume",'
        ' "device_name": "/dev/vda", "volume_size": 1, "delete_on_termination": true,'
        f' "snapshot_id": "{VOLUME_SNAPSHOT_ID}", "tag": null}}]'
    )


_PRIVATE: Final = {"visibility": "private"}
_RAW: Final = {"disk_format": "raw", "container_format": "bare"}
_QCOW: Final = {"disk_format": "qcow2", "container_format": "bare"}

SPECS: Final[tuple[Spec, ...]] = (
    Spec("public-admin", "admin", {"visibility": "public", **_QCOW, "min_ram": 2048, "min_disk": 20,
         "os_distro": "ubuntu", "os_version": "24.04", "description": "Public by the admin"},
         ("upload",)),
    Spec("public-admin-deactivated", "admin", {"visibility": "public", **_RAW, "min_ram": 4096,
         "min_disk": 40}, ("upload", "deactivate")),
    Spec("private-admin", "admin", {**_PRIVATE, **_RAW}, ("upload",)),
    Spec("cirros-active", "alice", {**_PRIVATE, **_RAW, "min_ram": 64, "min_disk": 1,
         "os_distro": "cirros", "os_version": "0.6.2", "os_type": "linux",
         "architecture": "x86_64", "description": "CirrOS 0.6.2 test image",
         "hw_disk_bus": "virtio", "hw_vif_model": "virtio", "hw_qemu_guest_agent": "yes",
         "hw_rng_model": "virtio"}, ("upload",)),
    Spec("snapshot-of-vm", "alice", {**_PRIVATE, **_QCOW, "min_ram": 512, "min_disk": 2,
         "image_type": "snapshot", "instance_uuid": INSTANCE_UUID, "auto_disk_config": "True",
         "bdm_v2": "True", "root_device_name": "/dev/vda", "block_device_mapping": _bdm(),
         "os_type": "linux"}, ("upload",)),
    Spec("bdm-invalid-json", "alice", {**_PRIVATE, **_QCOW, "min_ram": 128, "min_disk": 3,
         "block_device_mapping": "[{not json", "auto_disk_config": "False",
         "mappings": '[{"virtual": "root", "device": "/dev/vda"}]'}, ("upload",)),
    Spec("mappings-invalid-json", "alice", {**_PRIVATE, **_QCOW, "min_ram": 256, "min_disk": 4,
         "mappings": "{{broken", "auto_disk_config": "garbage"}),
    Spec("cirros-kernel", "alice", {**_PRIVATE, "disk_format": "aki", "container_format": "aki"},
         ("upload",)),
    Spec("cirros-ramdisk", "alice", {**_PRIVATE, "disk_format": "ari", "container_format": "ari"},
         ("upload",)),
    Spec("cirros-ami", "alice", {**_PRIVATE, "disk_format": "ami", "container_format": "ami",
         "min_ram": 96, "min_disk": 5, "kernel_id": image_id("cirros-kernel"),
         "ramdisk_id": image_id("cirros-ramdisk")}, ("upload",)),
    Spec("status-queued", "alice", {**_PRIVATE, "min_ram": 1024, "min_disk": 6}),
    Spec("status-saving", "alice", {**_PRIVATE, **_QCOW, "min_ram": 1536}, ("db:saving",)),
    Spec("status-active", "alice", {**_PRIVATE, **_QCOW, "min_ram": 3072, "min_disk": 8},
         ("upload",)),
    Spec("status-deactivated", "alice", {**_PRIVATE, **_RAW, "min_disk": 9},
         ("upload", "deactivate")),
    Spec("status-uploading", "alice", {**_PRIVATE, **_RAW, "min_disk": 10}, ("stage",)),
    Spec("status-importing", "alice", {**_PRIVATE, **_RAW, "min_disk": 11},
         ("stage", "db:importing")),
    Spec("imported-direct", "alice", {**_PRIVATE, **_RAW, "min_disk": 12}, ("stage", "import")),
    Spec("status-killed", "alice", {**_PRIVATE, **_QCOW, "min_disk": 13}, ("db:killed",)),
    Spec("status-pending_delete", "alice", {**_PRIVATE, **_QCOW, "min_disk": 14},
         ("upload", "db:pending_delete")),
    Spec("status-deleted", "alice", {**_PRIVATE, **_QCOW, "min_disk": 15},
         ("upload", "db:deleted")),
    Spec("status-unknown", "alice", {**_PRIVATE, **_QCOW, "min_disk": 16},
         (f"db:{UNKNOWN_STATUS}",)),
    Spec("deleted-via-api", "alice", {**_PRIVATE, **_RAW}, ("upload", "delete")),
    Spec("default-visibility", "alice", {**_RAW, "min_ram": 768}, ("upload",)),
    Spec("shared-a-accepted", "alice", {"visibility": "shared", **_RAW, "min_ram": 640},
         ("upload", "share:bob")),
    Spec("shared-a-pending", "alice", {"visibility": "shared", **_RAW, "min_ram": 320},
         ("upload", "offer:bob")),
    Spec("community-a", "alice", {"visibility": "community", **_QCOW, "min_ram": 192,
         "os_distro": "debian", "os_version": "12"}, ("upload",)),
    Spec("hidden-a", "alice", {**_PRIVATE, **_RAW, "min_ram": 160}, ("upload", "hide")),
    Spec("protected-a", "alice", {**_PRIVATE, **_RAW, "protected": True, "min_ram": 112},
         ("upload",)),
    Spec("Ünïcødé образ 镜像 ✓", "alice", {**_PRIVATE, **_RAW, "min_ram": 32,
         "description": "Ωmega – “quoted” ☃"}, ("upload",)),  # noqa: RUF001 - on purpose
    Spec('spaces, commas & "quotes"', "alice", {**_PRIVATE, "min_disk": 7}),
    Spec(UNNAMED, "alice", {**_PRIVATE}),
    Spec("private-b", "bob", {**_PRIVATE, **_RAW, "min_ram": 8192}, ("upload",)),
    Spec("shared-b-accepted", "bob", {"visibility": "shared", **_RAW, "min_ram": 48},
         ("upload", "share:alice")),
    Spec("community-b", "bob", {"visibility": "community", **_RAW, "min_ram": 24}, ("upload",)),
    *(
        Spec(f"page-{i:02d}", "alice", {**_PRIVATE, "page_index": str(i)})
        for i in range(PAGE_IMAGES)
    ),
)  # fmt: skip

LISTED_USERS: Final = ("alice", "bob", "dave", "admin")


@dataclass(frozen=True, slots=True)
class Catalogue:
    images: dict[str, JsonObject]  # label -> Glance's JSON re-read by the owner after seeding
    ids: dict[str, str]  # label -> image id (uuid5 of the label)
    owners: dict[str, str]  # label -> user who created it ("alice", "bob", "admin")
    removed: frozenset[str]  # labels deleted through the API: GET 404; images[] has the last JSON
    listings: dict[str, list[str]]  # user -> ids of Glance's default list, in its order
    seconds: float

    def image(self, label: str) -> JsonObject:
        return self.images[label]

    def label_of(self, image_id_: str) -> str:
        return next(label for label, value in self.ids.items() if value == image_id_)

    def listed(self, user: str) -> list[str]:
        """Labels of `user`'s default Glance list, newest first."""
        return [self.label_of(value) for value in self.listings[user]]


def seed_standard_catalogue(stack: StackInfo) -> Catalogue:
    start = time.monotonic()
    wipe(stack)
    api = GlanceApi(stack)
    images: dict[str, JsonObject] = {}
    removed = set()
    for spec in SPECS:
        fields = dict(spec.fields, id=image_id(spec.label))
        if spec.label != UNNAMED:
            fields["name"] = spec.label
        api.create(spec.owner, **fields)
        for step in spec.steps:
            if step == "delete":
                images[spec.label] = api.get(spec.owner, image_id(spec.label))
                removed.add(spec.label)
            _apply(api, stack, spec, step)
    for spec in SPECS:
        if spec.label not in removed:
            images[spec.label] = api.get(spec.owner, image_id(spec.label))
    listings = {user: [image["id"] for image in api.list_images(user)] for user in LISTED_USERS}
    seconds = time.monotonic() - start
    print(f"seeded the standard catalogue ({len(SPECS)} images) in {seconds:.1f}s", file=sys.stderr)
    return Catalogue(
        images=images,
        ids={spec.label: image_id(spec.label) for spec in SPECS},
        owners={spec.label: spec.owner for spec in SPECS},
        removed=frozenset(removed),
        listings=listings,
        seconds=seconds,
    )


def _payload(label: str, size: int) -> bytes:
    return (label.encode() * (size // max(len(label.encode()), 1) + 1))[:size]


def _apply(api: GlanceApi, stack: StackInfo, spec: Spec, step: str) -> None:
    owner, ident = spec.owner, image_id(spec.label)
    verb, _, arg = step.partition(":")
    size = 1024 * (1 + sum(map(ord, spec.label)) % 4)  # 1-4 KiB, stable per label
    if verb == "upload":
        api.upload(owner, ident, _payload(spec.label, size))
    elif verb == "deactivate":
        api.deactivate(owner, ident)
    elif verb == "stage":
        api.stage(owner, ident, _payload(spec.label, size))
    elif verb == "import":
        api.import_staged(owner, ident)
    elif verb in ("share", "offer"):
        api.share(owner, ident, arg, accept=verb == "share")
    elif verb == "hide":
        api.set_hidden(owner, ident)
    elif verb == "db":
        set_status(stack, ident, arg)
    elif verb == "delete":
        api.delete(owner, ident)
    else:
        raise ValueError(f"unknown catalogue step {step!r} for {spec.label!r}")
