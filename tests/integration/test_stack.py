"""Self-test of the real stack: servers, identities, the standard catalogue and bulk seeding."""

from __future__ import annotations

import pytest

from tests.stack.catalogue import UNKNOWN_STATUS, Catalogue
from tests.stack.fixtures import BulkImages, ScratchImages
from tests.stack.info import StackInfo
from tests.stack.rest import request
from tests.stack.seed import GlanceApi

pytestmark = pytest.mark.integration


def test_servers_answer_and_catalogue_names_glance(
    real_stack: StackInfo, tokens: dict[str, str]
) -> None:
    assert request("GET", f"{real_stack.keystone_url}/v3").status == 200
    assert request("GET", f"{real_stack.glance_url}/versions").status == 200
    resp = request("GET", f"{real_stack.keystone_v3}/auth/catalog", token=tokens["alice"])
    image = [s for s in resp.json()["catalog"] if s["type"] == "image"]
    assert len(image) == 1
    endpoints = {(e["interface"], e["region_id"], e["url"]) for e in image[0]["endpoints"]}
    assert endpoints == {
        ("public", "RegionOne", real_stack.glance_url),
        ("internal", "RegionOne", real_stack.glance_url),
    }


def test_glance_requires_a_real_token(real_stack: StackInfo) -> None:
    url = f"{real_stack.glance_url}/v2/images"
    assert request("GET", url).status == 401
    garbage = request("GET", url, token="not-a-token")
    assert garbage.status == 401
    assert garbage.headers["www-authenticate"] == f'Keystone uri="{real_stack.keystone_url}"'


def test_revoked_token_is_refused(real_stack: StackInfo) -> None:
    token = real_stack.new_token("bob")
    assert real_stack.token_valid(token)
    real_stack.revoke_token(token)
    assert not real_stack.token_valid(token)
    # Glance never saw this token, so keystonemiddleware's cache cannot vouch for it.
    assert request("GET", f"{real_stack.glance_url}/v2/images", token=token).status == 401


def test_alice_sees_her_images_and_not_bobs_private(
    catalogue: Catalogue, glance_api: GlanceApi
) -> None:
    listed = {image["name"] for image in glance_api.list_images("alice")}
    assert {"cirros-active", "snapshot-of-vm", "public-admin", "shared-b-accepted"} <= listed
    assert "private-b" not in listed
    assert "private-admin" not in listed
    assert len(catalogue.listings["alice"]) >= 45
    assert set(catalogue.listed("bob")) == {
        "public-admin", "public-admin-deactivated", "private-b", "shared-b-accepted",
        "community-b", "shared-a-accepted",
    }  # fmt: skip
    private_b = f"/v2/images/{catalogue.ids['private-b']}"
    assert glance_api.call("alice", "GET", private_b).status == 404


def test_dave_sees_either_project(catalogue: Catalogue, glance_api: GlanceApi) -> None:
    as_b = {image["id"] for image in glance_api.list_images("dave", "demo-b")}
    assert catalogue.ids["private-b"] in as_b
    assert catalogue.ids["cirros-active"] not in as_b
    assert catalogue.listings["dave"] == catalogue.listings["alice"]


def test_carol_gets_403_on_list(
    catalogue: Catalogue, real_stack: StackInfo, tokens: dict[str, str]
) -> None:
    resp = request("GET", f"{real_stack.glance_url}/v2/images", token=tokens["carol"])
    assert resp.status == 403
    assert "get_images" in resp.json()["message"]


@pytest.mark.parametrize(
    ("label", "status", "listed"),
    [
        ("status-queued", "queued", True),
        ("status-saving", "saving", True),
        ("status-active", "active", True),
        ("status-deactivated", "deactivated", True),
        ("status-uploading", "uploading", True),
        ("status-importing", "importing", True),
        ("imported-direct", "active", True),
        ("status-killed", "killed", False),
        ("status-pending_delete", "pending_delete", True),
        ("status-deleted", "deleted", True),
        ("status-unknown", UNKNOWN_STATUS, False),
    ],
)
def test_statuses_appear_as_seeded(
    catalogue: Catalogue, glance_api: GlanceApi, label: str, status: str, listed: bool
) -> None:
    image_id = catalogue.ids[label]
    assert glance_api.get("alice", image_id)["status"] == status
    assert catalogue.images[label]["status"] == status
    assert (image_id in catalogue.listings["alice"]) is listed


def test_catalogue_shapes(catalogue: Catalogue, glance_api: GlanceApi) -> None:
    images = catalogue.images
    assert images["status-queued"]["size"] is None
    assert images["<unnamed>"]["name"] is None
    assert images["Ünïcødé образ 镜像 ✓"]["name"] == "Ünïcødé образ 镜像 ✓"
    assert images["hidden-a"]["os_hidden"] is True
    assert catalogue.ids["hidden-a"] not in catalogue.listings["alice"]
    assert {images[k]["visibility"] for k in images} == {"private", "shared", "community", "public"}
    assert images["snapshot-of-vm"]["image_type"] == "snapshot"
    assert images["cirros-ami"]["kernel_id"] == catalogue.ids["cirros-kernel"]
    pending = glance_api.list_images("bob", member_status="pending")
    assert catalogue.ids["shared-a-pending"] in {image["id"] for image in pending}
    deleted = f"/v2/images/{catalogue.ids['deleted-via-api']}"
    assert glance_api.call("admin", "GET", deleted).status == 404


def test_scratch_images_are_purged(scratch_images: ScratchImages, glance_api: GlanceApi) -> None:
    image = scratch_images(
        "bob", name="scratch", data=b"z" * 10, disk_format="raw", container_format="bare"
    )
    assert image["status"] == "active"
    assert image["size"] == 10


def test_import_returns_once_its_task_has_finished(
    scratch_images: ScratchImages, glance_api: GlanceApi
) -> None:
    # The import task writes its own status after the image turns active; seeding that
    # went on in that gap met "database is locked" 500s on a loaded CI machine (on sqlite).
    image = scratch_images("alice", name="imported", disk_format="raw", container_format="bare")
    glance_api.stage("alice", image["id"], b"i" * 64)
    assert glance_api.import_staged("alice", image["id"])["status"] == "active"
    resp = glance_api.call("alice", "GET", f"/v2/images/{image['id']}/tasks", 200)
    tasks = resp.json()["tasks"]
    assert [(task["type"], task["status"]) for task in tasks] == [("api_image_import", "success")]


def test_bulk_insert_is_visible_through_paging(
    real_stack: StackInfo, bulk_images: BulkImages, glance_api: GlanceApi
) -> None:
    ids = bulk_images(2000, real_stack.demo_b, name_prefix="bulk-test")
    listed = [
        i for i in glance_api.list_images("bob", limit=500) if i["name"].startswith("bulk-test-")
    ]
    assert [image["id"] for image in listed] == ids[::-1]
    assert listed[0]["name"] == "bulk-test-01999"
    assert listed[-1]["bulk_index"] == "0"
    assert glance_api.call("alice", "GET", f"/v2/images/{ids[0]}").status == 404
