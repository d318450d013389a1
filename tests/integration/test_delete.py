"""``DELETE /images/{id}`` through the shim (docs/nova.md §8, docs/contract.md D4 and D11).

Against the real Glance: every prefix, and each refusal Glance 33 can produce (missing,
another project's, protected, someone else's public image, a status it cannot leave).
Against a recording fake Glance: a 409 (which needs a store such as RBD), a lost answer
and a Glance 5xx, where exactly one DELETE may reach Glance.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

import pytest

from tests.fakes import RecordingUpstream, Reply
from tests.integration.answers import (
    Answer,
    Client,
    expect_empty,
    expect_fault,
    send,
    version_for,
)
from tests.integration.conftest import IMG, MakeShim, ShimOverFake, active_scratch_image
from tests.stack.fixtures import ScratchImages
from tests.stack.info import StackInfo
from tests.stack.seed import GlanceApi, set_status

pytestmark = pytest.mark.integration

MISSING: Final = "00000000-0000-0000-0000-000000000000"
NOT_ALLOWED: Final = "You are not allowed to delete the image."
IMAGE_NOT_FOUND: Final = "Image not found."
UNAVAILABLE: Final = "The image service is unavailable. Please retry later."


@dataclass(frozen=True, slots=True)
class Deleter:
    """A shim over the real stack, the stack's users' tokens and scratch images to delete."""

    client: Client
    stack: StackInfo
    tokens: dict[str, str]
    scratch: ScratchImages

    async def image(self, owner: str = "alice", **fields: Any) -> str:
        """The id of a new scratch image of *owner*'s with 1 KiB of data: active, sized."""
        image_id: str = (await active_scratch_image(self.scratch, owner, **fields))["id"]
        return image_id

    async def delete(
        self, image_id: str, user: str | None = "alice", prefix: str = "/v2.1", **options: Any
    ) -> Answer:
        """``DELETE {prefix}/images/{image_id}`` with *user*'s token (none for None)."""
        token = None if user is None else self.tokens[user]
        return await send(self.client, "DELETE", f"{prefix}/images/{image_id}", token, **options)

    async def glance_status(self, image_id: str) -> int:
        """What Glance answers the admin for ``GET /v2/images/{id}``: 200, or 404 once deleted."""
        path = f"/v2/images/{image_id}"
        response = await asyncio.to_thread(self.scratch.api.call, "admin", "GET", path)
        return response.status


@pytest.fixture
async def deleter(
    make_shim: MakeShim,
    real_stack: StackInfo,
    tokens: dict[str, str],
    scratch_images: ScratchImages,
) -> Deleter:
    return Deleter(await make_shim(), real_stack, tokens, scratch_images)


async def test_delete_under_every_prefix(deleter: Deleter, real_stack: StackInfo) -> None:
    prefixes = [f"/v2.1/{real_stack.demo_a}", "/v2.1", f"/v2/{real_stack.demo_a}", "/v2"]
    for prefix in prefixes:
        image_id = await deleter.image()
        expect_empty(await deleter.delete(image_id, prefix=prefix), version_for(prefix))
        assert await deleter.glance_status(image_id) == 404
        # Deleting it again: Glance's 404 "Failed to find image ... to delete".
        answer = await deleter.delete(image_id, prefix=prefix)
        expect_fault(answer, 404, "itemNotFound", IMAGE_NOT_FOUND, version_for(prefix))


@pytest.mark.parametrize("version", ["2.1", "2.35"])
async def test_delete_with_a_microversion_up_to_2_35(deleter: Deleter, version: str) -> None:
    image_id = await deleter.image()
    expect_empty(await deleter.delete(image_id, version=version), version)
    assert await deleter.glance_status(image_id) == 404


@pytest.mark.parametrize("version", ["2.36", "2.38", "latest"])
async def test_delete_is_gone_from_2_36(deleter: Deleter, version: str) -> None:
    image_id = await deleter.image()
    answer = await deleter.delete(image_id, version=version)
    echoed = "2.104" if version == "latest" else version
    expect_fault(answer, 404, "itemNotFound", "The resource could not be found.", echoed)
    assert await deleter.glance_status(image_id) == 200
    # /v2 ignores the header (nova.md §2.4).
    expect_empty(await deleter.delete(image_id, prefix="/v2", version=version), None)


async def test_delete_of_images_that_are_not_active(
    deleter: Deleter, glance_api: GlanceApi
) -> None:
    """Nova lets a queued (SAVING) image be deleted (tempest test_delete_saving_image)."""
    queued = await asyncio.to_thread(deleter.scratch, "alice", name="queued")
    deactivated = await deleter.image()
    await asyncio.to_thread(glance_api.deactivate, "alice", deactivated)
    for image_id in (queued["id"], deactivated):
        expect_empty(await deleter.delete(image_id))
        assert await deleter.glance_status(image_id) == 404


@pytest.mark.parametrize(
    "image_id",
    [MISSING, "not-a-uuid", "-1", "0" * 37, "detail", "images", "a b"],
)
async def test_delete_missing_is_404(deleter: Deleter, image_id: str) -> None:
    # appendix C, "delete missing"; "detail" falls through to the item route as in Nova.
    expect_fault(await deleter.delete(image_id), 404, "itemNotFound", IMAGE_NOT_FOUND)


@pytest.mark.parametrize(
    ("owner", "fields", "user", "in_project", "status", "name", "message"),
    [
        # appendix C, "delete other project", with and without the project in the path
        ("alice", {"visibility": "private"}, "bob", False, 404, "itemNotFound", IMAGE_NOT_FOUND),
        ("alice", {"visibility": "private"}, "bob", True, 404, "itemNotFound", IMAGE_NOT_FOUND),
        # appendix C, "delete protected" (Glance: "Image <id> is protected and cannot be
        # deleted.")
        ("alice", {"protected": True}, "alice", False, 403, "forbidden", NOT_ALLOWED),
        # Glance: "You are not authorized to complete delete_image action."
        ("admin", {"visibility": "public"}, "bob", False, 403, "forbidden", NOT_ALLOWED),
        ("alice", {"visibility": "community"}, "bob", False, 403, "forbidden", NOT_ALLOWED),
    ],
    ids=[
        "another-projects-private",
        "another-projects-private-under-its-project",
        "protected",
        "someone-elses-public",
        "someone-elses-community",
    ],
)
async def test_refused_delete_leaves_the_image(
    deleter: Deleter,
    owner: str,
    fields: dict[str, Any],
    user: str,
    in_project: bool,
    status: int,
    name: str,
    message: str,
) -> None:
    image_id = await deleter.image(owner, **fields)
    prefix = f"/v2.1/{deleter.stack.demo_b}" if in_project else "/v2.1"
    expect_fault(await deleter.delete(image_id, user, prefix), status, name, message)
    assert await deleter.glance_status(image_id) == 200


async def test_glance_400_on_delete_stays_a_400(deleter: Deleter) -> None:
    """contract.md D4: Nova turned Glance's 400 on delete into a 500; the shim passes it on."""
    image_id = await deleter.image()
    # A row whose status is already "deleted" while still visible (deleted=0): Glance
    # refuses the deleted → deleted transition.
    await asyncio.to_thread(set_status, deleter.stack, image_id, "deleted")
    expect_fault(
        await deleter.delete(image_id),
        400,
        "badRequest",
        "HTTP 400 Bad Request: Image status transition from deleted to deleted is not allowed",
    )
    assert await deleter.glance_status(image_id) == 200


async def test_delete_without_a_token_is_401_and_reaches_nothing(deleter: Deleter) -> None:
    image_id = await deleter.image()
    answer = await deleter.delete(image_id, None)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"] == f'Keystone uri="{deleter.stack.keystone_url}"'
    assert await deleter.glance_status(image_id) == 200


# ---------------------------------------------------------------------------------------
# A recording fake Glance

IMAGE_PATH: Final = f"/v2/images/{IMG}"
RECORD: Final = {
    "id": IMG,
    "name": "fake",
    "status": "active",
    "created_at": None,
    "updated_at": None,
}


def deletes(fake: RecordingUpstream) -> int:
    return sum(1 for r in fake.requests if r.method == "DELETE" and r.raw_path == IMAGE_PATH)


async def test_delete_sends_the_callers_token_and_request_id(
    shim_over_fake: ShimOverFake,
) -> None:
    client, fake = await shim_over_fake(RECORD, ("DELETE", Reply(status=204)))
    answer = await send(client, "DELETE", f"/v2.1/images/{IMG}", "tok")
    expect_empty(answer)
    # One call, no GET before it (nova.md §8).
    assert [(r.method, r.raw_path) for r in fake.requests] == [("DELETE", IMAGE_PATH)]
    sent = fake.requests[0]
    assert sent.header("X-Auth-Token") == "tok"
    assert sent.header("X-Openstack-Request-Id") == answer.headers["x-openstack-request-id"]


async def test_glance_409_on_delete_is_409(shim_over_fake: ShimOverFake) -> None:
    """contract.md D4: Glance's 409 (image in use by a store, or with snapshots) → 409, not 500."""
    conflict = Reply.json(
        {
            "message": f"Image {IMG} could not be deleted because it is in use: The image "
            "cannot be deleted because it has snapshot(s).<br /><br />\n\n\n",
            "code": "409 Conflict",
            "title": "Conflict",
        },
        status=409,
    )
    client, fake = await shim_over_fake(RECORD, ("DELETE", conflict))
    answer = await send(client, "DELETE", f"/v2.1/images/{IMG}", "tok")
    expect_fault(
        answer,
        409,
        "conflictingRequest",
        f"Conflict deleting image. Reason: HTTP 409 Conflict: Image {IMG} could not be "
        "deleted because it is in use: The image cannot be deleted because it has "
        "snapshot(s)..",
    )
    assert deletes(fake) == 1


@pytest.mark.parametrize(
    "failure",
    [
        Reply(abort_before_response=True),  # connection reset, no answer
        Reply(abort_before_response=True, abort_mode="close"),  # closed, no answer
        Reply(status=503, body=b"busy"),
        Reply(status=500),
        Reply(status=502),
        Reply(status=204, delay=2.0),  # the answer comes after the timeout
    ],
    ids=["reset", "closed", "503", "500", "502", "timeout"],
)
@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "reused-connection"])
async def test_failed_delete_is_503_after_exactly_one_attempt(
    shim_over_fake: ShimOverFake, failure: Reply, warm: bool
) -> None:
    """contract.md D11: no blind retry of a write, neither the shim's own nor aiohttp's replay of an
    idempotent request on a broken keep-alive connection (docs/proxying.md §6)."""
    client, fake = await shim_over_fake(
        RECORD, ("DELETE", failure), glance_timeout=0.5, retry_after=7
    )
    if warm:  # leave a pooled keep-alive connection to the fake for the DELETE to reuse
        shown = await send(client, "GET", f"/v2.1/images/{IMG}", "tok")
        assert shown.status == 200, shown.body
    answer = await send(client, "DELETE", f"/v2.1/images/{IMG}", "tok")
    expect_fault(answer, 503, "serviceUnavailable", UNAVAILABLE)
    assert answer.headers.getall("Retry-After") == ["7"]
    await asyncio.sleep(0.1)  # a replay, if any, would have arrived by now
    assert deletes(fake) == 1
