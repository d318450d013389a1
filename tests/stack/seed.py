"""Put images into the stack's Glance: through its API with real tokens, or its database.

`GlanceApi` drives Glance v2 as a user would (create, upload, stage, import, deactivate,
share, hide, delete, list). The module functions write Glance's PostgreSQL database
directly (docs/stack.md §8), and only for what the API cannot do (docs/glance.md §10): the
statuses ``killed``,
``saving``, ``importing``, ``pending_delete``/``deleted`` with ``deleted`` false and unknown
strings (`set_status`), thousands of rows at once (`bulk_insert`), and `wipe`.
It must not decide what a catalogue contains (see `catalogue`).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack
from urllib.parse import urlencode

import psycopg
from psycopg import sql

from tests.stack.info import StackInfo
from tests.stack.procs import StackError, tail
from tests.stack.rest import Body, JsonObject, Response, expect, request

PATCH_TYPE = "application/openstack-images-v2.1-json-patch"
_TASK_DONE = frozenset({"success", "failure"})


class GlanceApi:
    """Glance v2 calls as `user` (scoped to `project`, a name; the user's default if None)."""

    def __init__(self, stack: StackInfo) -> None:
        self.stack = stack

    def call(
        self,
        user: str,
        method: str,
        path: str,
        *ok: int,
        project: str | None = None,
        **body: Unpack[Body],
    ) -> Response:
        token = self.stack.token(user, project)
        resp = request(method, f"{self.stack.glance_url}{path}", token=token, **body)
        if ok and resp.status >= 500 and resp.status not in ok:
            # Glance's 500 body says nothing; its log says why (a database or store error).
            raise StackError(f"expected {ok}: {resp.describe()}\n{tail(self.stack.logs['glance'])}")
        return expect(resp, *ok) if ok else resp

    def create(self, user: str, project: str | None = None, /, **fields: object) -> JsonObject:
        """``POST /v2/images``; custom properties are passed as string-valued keywords."""
        return self.call(user, "POST", "/v2/images", 201, project=project, json_body=fields).json()

    def get(self, user: str, image_id: str, project: str | None = None) -> JsonObject:
        return self.call(user, "GET", f"/v2/images/{image_id}", 200, project=project).json()

    def upload(self, user: str, image_id: str, data: bytes, project: str | None = None) -> None:
        """``PUT /file``: the image becomes active with size, checksum and hashes."""
        path = f"/v2/images/{image_id}/file"
        octets = "application/octet-stream"
        self.call(user, "PUT", path, 204, project=project, data=data, content_type=octets)

    def stage(self, user: str, image_id: str, data: bytes, project: str | None = None) -> None:
        """``PUT /stage``: the image becomes ``uploading``."""
        path = f"/v2/images/{image_id}/stage"
        octets = "application/octet-stream"
        self.call(user, "PUT", path, 204, project=project, data=data, content_type=octets)

    def import_staged(self, user: str, image_id: str, project: str | None = None) -> JsonObject:
        """glance-direct import of staged data; waits until the image is active."""
        body = {"method": {"name": "glance-direct"}}
        self.call(
            user, "POST", f"/v2/images/{image_id}/import", 202, project=project, json_body=body
        )
        image = self.wait_status(user, image_id, "active", project=project)
        self.wait_tasks_done(user, image_id, project=project)
        return image

    def wait_tasks_done(
        self, user: str, image_id: str, project: str | None = None, timeout: float = 30.0
    ) -> None:
        """Wait until every task on the image has finished writing.

        Glance's import task sets the image active and then still writes its own status
        and the image's import properties; the next seeding step must not race those
        writes, so it waits until the task says success or failure.
        """
        deadline = time.monotonic() + timeout
        path = f"/v2/images/{image_id}/tasks"
        while True:
            tasks = self.call(user, "GET", path, 200, project=project).json()["tasks"]
            pending = [task["status"] for task in tasks if task["status"] not in _TASK_DONE]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise StackError(f"tasks of image {image_id} still {pending} after {timeout}s")
            time.sleep(0.05)

    def wait_status(
        self,
        user: str,
        image_id: str,
        status: str,
        project: str | None = None,
        timeout: float = 30.0,
    ) -> JsonObject:
        deadline = time.monotonic() + timeout
        while True:
            image = self.get(user, image_id, project)
            if image["status"] == status:
                return image
            if time.monotonic() > deadline:
                raise StackError(f"image {image_id} stayed {image['status']!r}, not {status!r}")
            time.sleep(0.1)

    def deactivate(self, user: str, image_id: str, project: str | None = None) -> None:
        self.call(user, "POST", f"/v2/images/{image_id}/actions/deactivate", 204, project=project)

    def reactivate(self, user: str, image_id: str, project: str | None = None) -> None:
        self.call(user, "POST", f"/v2/images/{image_id}/actions/reactivate", 204, project=project)

    def patch(
        self,
        user: str,
        image_id: str,
        ops: Sequence[Mapping[str, object]],
        project: str | None = None,
    ) -> JsonObject:
        path = f"/v2/images/{image_id}"
        return self.call(
            user, "PATCH", path, 200, project=project, data=_json(ops), content_type=PATCH_TYPE
        ).json()

    def set_hidden(self, user: str, image_id: str, hidden: bool = True) -> JsonObject:
        return self.patch(
            user, image_id, [{"op": "replace", "path": "/os_hidden", "value": hidden}]
        )

    def share(
        self,
        owner: str,
        image_id: str,
        member: str,
        *,
        accept: bool = True,
        project: str | None = None,
    ) -> None:
        """Add `member`'s default project (or `project`) as a member; accept as `member`."""
        member_project = project or self.stack.default_project(member)
        member_id = self.stack.project_ids[member_project]
        path = f"/v2/images/{image_id}/members"
        self.call(owner, "POST", path, 200, json_body={"member": member_id})
        if accept:
            body = {"status": "accepted"}
            self.call(
                member, "PUT", f"{path}/{member_id}", 200, project=member_project, json_body=body
            )

    def delete(self, user: str, image_id: str, project: str | None = None) -> None:
        self.call(user, "DELETE", f"/v2/images/{image_id}", 204, project=project)

    def list_images(
        self, user: str, project: str | None = None, **params: str | int
    ) -> list[JsonObject]:
        """Every image of a list query, following ``next`` links."""
        path: str | None = "/v2/images" + (f"?{urlencode(params)}" if params else "")
        images: list[JsonObject] = []
        while path:
            page = self.call(user, "GET", path, 200, project=project).json()
            images.extend(page["images"])
            path = page.get("next")
        return images


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


@contextmanager
def _db(stack: StackInfo) -> Iterator[psycopg.Connection[Any]]:
    """A write transaction on Glance's database, committed on success."""
    with psycopg.connect(stack.glance_db_url, connect_timeout=30) as conn:
        yield conn


def _stamp(moment: datetime) -> datetime:
    """Glance's timestamps: naive UTC (``timestamp without time zone``)."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def set_status(stack: StackInfo, image_id: str, status: str) -> None:
    """Give an image a status the API cannot produce; the row stays ``deleted`` false."""
    with _db(stack) as conn:
        cur = conn.execute(
            "UPDATE images SET status = %s, updated_at = %s WHERE id = %s",
            (status, _stamp(datetime.now(UTC)), image_id),
        )
        if cur.rowcount != 1:
            raise StackError(f"no image {image_id} in Glance's database")


def bulk_insert(
    stack: StackInfo,
    n: int,
    owner: str,
    *,
    name_prefix: str = "bulk",
    visibility: str = "private",
    status: str = "active",
    properties: Mapping[str, str] | None = None,
) -> list[str]:
    """Insert `n` images owned by project id `owner` straight into the database; return ids.

    Names are ``<prefix>-00000``…; ``created_at`` ascends by one millisecond per image and
    ends just before now (so the newest bulk image lists first), ``updated_at`` is 500 µs
    later. Each image gets the properties ``bulk_index`` and ``os_distro`` plus
    `properties`; sizes are ``1024 + i`` (null unless active); min_ram and min_disk cycle.
    """
    now = datetime.now(UTC)
    distros = ("cirros", "ubuntu", "fedora")
    ids = [str(uuid.uuid4()) for _ in range(n)]
    image_rows = []
    prop_rows: list[tuple[str, str, str, datetime, datetime, bool]] = []
    for i, image_id in enumerate(ids):
        created = now - timedelta(milliseconds=n - i)
        stamps = (_stamp(created), _stamp(created + timedelta(microseconds=500)))
        size = 1024 + i if status == "active" else None
        image_rows.append(
            (image_id, f"{name_prefix}-{i:05d}", size, status, *stamps, "qcow2", "bare",
             owner, i % 10, (i % 4) * 512, size, visibility, False, False, False)
        )  # fmt: skip
        props = {"bulk_index": str(i), "os_distro": distros[i % 3], **(properties or {})}
        prop_rows.extend((image_id, key, value, *stamps, False) for key, value in props.items())
    with _db(stack) as conn, conn.cursor() as cur:
        # COPY: thousands of rows in one round trip.
        with cur.copy(
            "COPY images (id, name, size, status, created_at, updated_at, disk_format,"
            " container_format, owner, min_disk, min_ram, virtual_size, visibility, deleted,"
            " protected, os_hidden) FROM STDIN"
        ) as copy:
            for row in image_rows:
                copy.write_row(row)
        with cur.copy(
            "COPY image_properties (image_id, name, value, created_at, updated_at, deleted)"
            " FROM STDIN"
        ) as copy:
            for prop in prop_rows:
                copy.write_row(prop)
    return ids


_IMAGE_TABLES = ("image_properties", "image_members", "image_tags", "image_locations")


def purge(stack: StackInfo, image_ids: Sequence[str]) -> None:
    """Remove these images' rows (any status, protected or not) and their stored data."""
    with _db(stack) as conn:
        for table in (*_IMAGE_TABLES, "images"):
            column = "id" if table == "images" else "image_id"
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(
                    sql.Identifier(table), sql.Identifier(column)
                ),
                (list(image_ids),),
            )
    for image_id in image_ids:
        for store in (stack.glance_data_dir, stack.glance_staging_dir):
            (store / image_id).unlink(missing_ok=True)


def wipe(stack: StackInfo) -> None:
    """Remove every image, member, tag, location and task; empty the fs and staging stores."""
    with _db(stack) as conn:
        for table in (*_IMAGE_TABLES, "task_info", "tasks", "images"):
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
    for store in (stack.glance_data_dir, stack.glance_staging_dir):
        for entry in store.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
