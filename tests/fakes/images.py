"""Glance image records and list pages for `RecordingUpstream`, shaped as Glance 33 sends them.

The one factory of fake Glance images (docs/glance.md §1, §5): what the in-process and
reliability tests script a fake Glance with. Tests against the real Glance seed it through
its API instead (`tests.stack`).
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from tests.fakes.upstream import Reply

IMAGE_ID: Final = "5a1e0c6e-2a6f-4b5e-9d36-3f0c2b7d1a11"

SCHEMA: Final = {
    "name": "image",
    "properties": {
        "id": {},
        "name": {},
        "status": {},
        "visibility": {},
        "os_distro": {"is_base": False},
    },
}
"""A small ``/v2/schemas/image``: ``os_distro`` is a property shown in ``metadata``."""


def glance_image(
    which: int | str = IMAGE_ID, name: str | None = None, **extra: Any
) -> dict[str, Any]:
    """An active image: *which* is its id, or an integer turned into a uuid (``image-<n>``)."""
    image_id = str(uuid.UUID(int=which)) if isinstance(which, int) else which
    return {
        "id": image_id,
        "name": f"image-{which}" if name is None else name,
        "status": "active",
        "visibility": "private",
        "size": 1024,
        "min_ram": 0,
        "min_disk": 0,
        "created_at": "2026-01-02T03:04:05Z",
        "updated_at": "2026-01-02T03:04:06Z",
        **extra,
    }


def page(start: int, count: int, *, full: bool = True) -> Reply:
    """One Glance list page of images ``start .. start+count-1``; ``full``: a next link."""
    images = [glance_image(i) for i in range(start, start + count)]
    document: dict[str, Any] = {"images": images, "first": "/v2/images", "schema": "/x"}
    if full and images:
        document["next"] = f"/v2/images?limit={count}&marker={images[-1]['id']}"
    return Reply.json(document)
