"""The image metadata API through the shim against the real Glance (docs/contract.md §7).

Every verb, every appendix C metadata error, contract.md D5 (the whole Glance record is compared
before and after each write: only the named properties and ``updated_at`` may change),
D6, contract.md D7, the quota, other projects' images, ``block_device_mapping``; then what the real
Glance cannot produce (the exact PATCH sent, a 409 race, a lost answer) against a
recording fake Glance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

import pytest

from tests.fakes import RecordingUpstream, Reply
from tests.integration import expected
from tests.integration.answers import (
    Answer,
    Client,
    expect_empty,
    expect_fault,
    expect_ok,
    send,
    version_for,
)
from tests.integration.conftest import IMG, MakeShim, ShimOverFake, active_scratch_image
from tests.stack.fixtures import ScratchImages
from tests.stack.info import StackInfo
from tests.stack.rest import JsonObject
from tests.stack.seed import PATCH_TYPE, GlanceApi

pytestmark = pytest.mark.integration

BDM: Final = (
    '[{"boot_index": 0, "source_type": "snapshot", "destination_type": "volume",'
    ' "device_name": "/dev/vda", "volume_size": 1, "delete_on_termination": true,'
    ' "snapshot_id": "5f0c7a51-93e4-4b8e-a1d2-6c3b9e7f2a10", "tag": null}]'
)
BDM_DECODED: Final = expected.SNAPSHOT_BDM
PROPS: Final = {"os_distro": "cirros", "os_version": "0.6.2", "hw_disk_bus": "virtio"}
MISSING: Final = "00000000-0000-0000-0000-000000000000"
NOT_FOUND: Final = "The resource could not be found."
IMAGE_NOT_FOUND: Final = "Image not found."
LIMIT_EXCEEDED: Final = "Image metadata limit exceeded"
# contract.md D6, as named in the issue; the test adds a few more of the schema's base properties.
CORE_KEYS: Final = ("name", "visibility", "min_ram", "protected", "tags", "status", "os_hidden")
CORE_KEYS_MORE: Final = ("owner", "size", "checksum", "stores", "locations", "id", "self")


class Glance:
    """The stack's Glance as the tests see it: blocking calls run off the event loop."""

    def __init__(self, scratch: ScratchImages, api: GlanceApi) -> None:
        self.scratch = scratch
        self.api = api

    async def image(self, owner: str = "alice", **fields: Any) -> JsonObject:
        """A scratch image (purged after the test) with 1 KiB of data: active, sized."""
        return await active_scratch_image(self.scratch, owner, **fields)

    async def record(self, image_id: str, user: str = "admin") -> JsonObject:
        """The whole Glance record (``GET /v2/images/{id}``)."""
        return await asyncio.to_thread(self.api.get, user, image_id)


@pytest.fixture
def glance(scratch_images: ScratchImages, glance_api: GlanceApi) -> Glance:
    return Glance(scratch_images, glance_api)


@dataclass(frozen=True, slots=True)
class Metadata:
    """One image's metadata API, called through a shim with one token."""

    client: Client
    token: str
    glance: Glance
    image: JsonObject

    @property
    def id(self) -> str:
        image_id: str = self.image["id"]
        return image_id

    @property
    def path(self) -> str:
        return f"/v2.1/images/{self.id}/metadata"

    async def send(self, method: str, suffix: str = "", **options: Any) -> Answer:
        """*method* on the whole metadata, or with *suffix* ``"/key"`` on one key."""
        return await send(self.client, method, self.path + suffix, self.token, **options)

    async def record(self) -> JsonObject:
        return await self.glance.record(self.id)

    @contextlib.asynccontextmanager
    async def unchanged(self) -> AsyncIterator[JsonObject]:
        """Glance's whole record before the block, which must be the same after it."""
        before = await self.record()
        yield before
        assert await self.record() == before


OpenMetadata = Callable[..., Awaitable[Metadata]]


@pytest.fixture
def open_metadata(make_shim: MakeShim, tokens: dict[str, str], glance: Glance) -> OpenMetadata:
    """``await open_metadata(settings, **fields)``: a new shim with *settings* in front of a
    new scratch image of alice's with *fields*, called with alice's token."""

    async def open_image(settings: Mapping[str, Any] | None = None, **fields: Any) -> Metadata:
        client = await make_shim(**(settings or {}))
        return Metadata(client, tokens["alice"], glance, await glance.image(**fields))

    return open_image


def assert_only_changed(before: JsonObject, after: JsonObject, expected: JsonObject) -> None:
    """*after* is *expected* except for ``updated_at``, which may only move forward."""
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in expected.items() if k != "updated_at"
    }
    assert after["updated_at"] >= before["updated_at"]


def prefixes(stack: StackInfo) -> list[str]:
    return [f"/v2.1/{stack.demo_a}", "/v2.1", f"/v2/{stack.demo_a}", "/v2"]


# ---------------------------------------------------------------------------------------
# The six verbs


async def test_index_under_every_prefix(open_metadata: OpenMetadata, real_stack: StackInfo) -> None:
    api = await open_metadata(**PROPS, block_device_mapping=BDM, mappings="[]")
    shown = {"metadata": {**PROPS, "block_device_mapping": BDM_DECODED, "mappings": []}}
    for prefix in prefixes(real_stack):
        answer = await send(api.client, "GET", f"{prefix}/images/{api.id}/metadata", api.token)
        expect_ok(answer, shown, version_for(prefix))


async def test_index_of_an_image_without_properties(open_metadata: OpenMetadata) -> None:
    api = await open_metadata()
    expect_ok(await api.send("GET"), {"metadata": {}})


async def test_show_item(open_metadata: OpenMetadata) -> None:
    api = await open_metadata(**PROPS, block_device_mapping=BDM)
    expect_ok(await api.send("GET", "/os_distro"), {"meta": {"os_distro": "cirros"}})
    expect_ok(
        await api.send("GET", "/block_device_mapping"),
        {"meta": {"block_device_mapping": BDM_DECODED}},
    )
    # appendix C, "metadata get missing key"; a core attribute is not metadata (Nova shows
    # the same 404).
    for key in ("nokey", "name"):
        expect_fault(await api.send("GET", f"/{key}"), 404, "itemNotFound", NOT_FOUND)


async def test_post_merges_and_answers_with_what_glance_stored(
    open_metadata: OpenMetadata,
) -> None:
    api = await open_metadata(**PROPS)
    before = await api.record()
    written = {"os_distro": "ubuntu", "Label": "UpdatedImage"}
    expect_ok(
        await api.send("POST", body={"metadata": written}), {"metadata": {**PROPS, **written}}
    )
    assert_only_changed(before, await api.record(), {**before, **written})


async def test_post_of_nothing_writes_nothing(open_metadata: OpenMetadata) -> None:
    api = await open_metadata(**PROPS)
    async with api.unchanged() as before:
        expect_ok(await api.send("POST", body={"metadata": {}}), {"metadata": PROPS})
    same = {"metadata": {"os_distro": "cirros"}}
    expect_ok(await api.send("POST", body=same), {"metadata": PROPS})
    assert_only_changed(before, await api.record(), before)


async def test_put_replaces_everything_and_echoes_the_request(open_metadata: OpenMetadata) -> None:
    api = await open_metadata(**PROPS)
    before = await api.record()
    wanted = {"os_distro": "cirros", "auto_disk_config": "True", "Label": "Changed"}
    expect_ok(await api.send("PUT", body={"metadata": wanted}), {"metadata": wanted})
    kept = {k: v for k, v in before.items() if k not in ("os_version", "hw_disk_bus")}
    assert_only_changed(before, await api.record(), {**kept, **wanted})


async def test_put_of_nothing_removes_every_property(open_metadata: OpenMetadata) -> None:
    api = await open_metadata(**PROPS)
    before = await api.record()
    expect_ok(await api.send("PUT", body={"metadata": {}}), {"metadata": {}})
    kept = {k: v for k, v in before.items() if k not in PROPS}
    assert_only_changed(before, await api.record(), kept)
    expect_ok(await api.send("GET"), {"metadata": {}})


async def test_put_item_sets_one_key_and_echoes_it(open_metadata: OpenMetadata) -> None:
    api = await open_metadata(**PROPS)
    for key, value in (("os_version", "0.6.3"), ("auto_disk_config", "False")):
        before = await api.record()
        body = {"meta": {key: value}}
        expect_ok(await api.send("PUT", f"/{key}", body=body), body)
        assert_only_changed(before, await api.record(), {**before, key: value})


async def test_put_item_refusals(open_metadata: OpenMetadata) -> None:
    api = await open_metadata(**PROPS)
    mismatch = "Request body and URI mismatch"
    refusals = [
        # appendix C, "metadata put item mismatch"
        (api.path, {"b": "x"}, mismatch),
        # appendix C, "metadata put item two keys"
        (
            api.path,
            {"a": "x", "b": "y"},
            "Invalid input for field/attribute meta. Value: {'a': 'x', 'b': 'y'}. "
            "{'a': 'x', 'b': 'y'} has too many properties",
        ),
        (api.path, {}, "Invalid input for field/attribute meta. Value: {}. {} should be non-empty"),
        # The mismatch is found before the image is looked up (docs/nova.md §7).
        (f"/v2.1/images/{MISSING}/metadata", {"b": "x"}, mismatch),
    ]
    async with api.unchanged():
        for path, meta, message in refusals:
            answer = await send(api.client, "PUT", f"{path}/a", api.token, body={"meta": meta})
            expect_fault(answer, 400, "badRequest", message)


async def test_delete_item(open_metadata: OpenMetadata) -> None:
    api = await open_metadata(**PROPS)
    before = await api.record()
    expect_empty(await api.send("DELETE", "/hw_disk_bus"))
    kept = {k: v for k, v in before.items() if k != "hw_disk_bus"}
    assert_only_changed(before, await api.record(), kept)
    # appendix C, "metadata delete missing key"
    async with api.unchanged():
        for key in ("hw_disk_bus", "nokey"):
            answer = await api.send("DELETE", f"/{key}")
            expect_fault(answer, 404, "itemNotFound", "Invalid metadata key")


# ---------------------------------------------------------------------------------------
# Request bodies: appendix C and appendix D


@pytest.mark.parametrize(
    ("method", "body", "data", "message"),
    [
        (
            "POST",
            {"metadata": {"bad/key": "x"}},
            None,
            "Invalid input for field/attribute metadata. Value: {'bad/key': 'x'}. 'bad/key' "
            "does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'",
        ),
        (
            "POST",
            {"metadata": {"k": 5}},
            None,
            "Invalid input for field/attribute k. Value: 5. 5 is not of type 'string'",
        ),
        (
            "POST",
            {"metadata": {"k": "x" * 256}},
            None,
            f"Invalid input for field/attribute k. Value: {'x' * 256}. '{'x' * 256}' is too long",
        ),
        ("POST", {"meta": {"k": "v"}}, None, "'metadata' is a required property"),
        ("POST", None, b'{"metadata": {"k": ', "Malformed request body"),
        ("POST", None, b"", "None is not of type 'object'"),
        ("PUT", None, b"", "None is not of type 'object'"),
        ("PUT", None, b"[1, 2", "Malformed request body"),
        (
            "PUT",
            {"metadata": {"k": None}},
            None,
            "Invalid input for field/attribute k. Value: None. None is not of type 'string'",
        ),
        (
            "POST",
            {"metadata": {"k": "v"}, "extra": {}},
            None,
            "Additional properties are not allowed ('extra' was unexpected)",
        ),
    ],
)
async def test_bad_bodies_are_refused_with_novas_text_and_write_nothing(
    open_metadata: OpenMetadata, method: str, body: Any, data: bytes | None, message: str
) -> None:
    api = await open_metadata(**PROPS)
    sent: dict[str, Any] = {"data": data} if body is None else {"body": body}
    async with api.unchanged():
        expect_fault(await api.send(method, **sent), 400, "badRequest", message)


async def test_empty_key_is_refused_on_v21_and_passes_alone_on_v2(
    open_metadata: OpenMetadata,
) -> None:
    """As Nova 34 (docs/nova.md appendix E): the key pattern refuses ``""``; /v2's relaxed
    check lets an object through whose keys all fail it."""
    api = await open_metadata(os_distro="cirros")
    answer = await api.send("POST", body={"metadata": {"": "e"}})
    expect_fault(
        answer,
        400,
        "badRequest",
        "Invalid input for field/attribute metadata. Value: {'': 'e'}. "
        "'' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'",
    )
    path = f"/v2/images/{api.id}/metadata"
    answer = await send(api.client, "POST", path, api.token, body={"metadata": {"": "e"}})
    expect_ok(answer, {"metadata": {"os_distro": "cirros", "": "e"}}, None)
    assert (await api.record())[""] == "e"


async def test_text_plain_and_missing_content_types_are_accepted(
    open_metadata: OpenMetadata,
) -> None:
    api = await open_metadata()
    # appendix D: Nova 34 takes text/plain (webob's default) as no type at all.
    stored: dict[str, str] = {}
    for content_type, key in (("text/plain", "a"), (None, "b")):
        data = json.dumps({"metadata": {key: "1"}}).encode()
        answer = await api.send("POST", data=data, content_type=content_type)
        stored[key] = "1"
        expect_ok(answer, {"metadata": stored})
    answer = await api.send("PUT", "/a", data=b'{"meta": {"a": "2"}}', content_type="text/plain")
    expect_ok(answer, {"meta": {"a": "2"}})


async def test_oversize_body_is_413(open_metadata: OpenMetadata) -> None:
    api = await open_metadata({"max_body": 4096})
    fits = json.dumps({"metadata": {"k": "v" * 200}}).encode()
    expect_ok(await api.send("POST", data=fits), {"metadata": {"k": "v" * 200}})
    too_big = json.dumps({"metadata": {f"k{i}": "v" * 200 for i in range(20)}}).encode()
    assert len(too_big) > 4096
    async with api.unchanged():
        for method, suffix in (("POST", ""), ("PUT", ""), ("PUT", "/k0")):
            # A declared Content-Length is refused up front, before any microversion is read
            # (like the size limiter in front of Nova): no version headers.
            answer = await api.send(method, suffix, data=too_big)
            expect_fault(answer, 413, "overLimit", "Request is too large.", None)
            # A chunked body is cut off while it is read, after the microversion.
            answer = await api.send(method, suffix, data=too_big, chunked=True)
            expect_fault(answer, 413, "overLimit", "Request is too large.")


# ---------------------------------------------------------------------------------------
# Microversions and the /v2 prefix


def six_verbs(image_id: str, prefix: str = "/v2.1") -> list[tuple[str, str, Any, int]]:
    """(method, path, body, success status) for each metadata verb on *image_id*."""
    path = f"{prefix}/images/{image_id}/metadata"
    return [
        ("GET", path, None, 200),
        ("POST", path, {"metadata": {"x": "1"}}, 200),
        ("PUT", path, {"metadata": {"os_distro": "cirros", "x": "2"}}, 200),
        ("GET", f"{path}/os_distro", None, 200),
        ("PUT", f"{path}/x", {"meta": {"x": "3"}}, 200),
        ("DELETE", f"{path}/x", None, 204),
    ]


async def call_verb(
    client: Client, method: str, path: str, body: Any, token: str | None, version: str | None = None
) -> Answer:
    if body is None:
        return await send(client, method, path, token, version=version)
    return await send(client, method, path, token, body=body, version=version)


async def every_verb(
    client: Client,
    image_id: str,
    token: str | None,
    version: str | None = None,
    prefix: str = "/v2.1",
) -> AsyncIterator[tuple[str, str, int, Answer]]:
    """Each of `six_verbs` in turn: (method, path, success status, answer)."""
    for method, path, body, status in six_verbs(image_id, prefix):
        yield method, path, status, await call_verb(client, method, path, body, token, version)


@pytest.mark.parametrize("version", ["2.1", "2.35", "2.36", "2.38"])
async def test_every_verb_is_served_up_to_2_38(open_metadata: OpenMetadata, version: str) -> None:
    api = await open_metadata(os_distro="cirros")
    async for method, path, status, answer in every_verb(api.client, api.id, api.token, version):
        assert answer.status == status, (method, path, answer.body)
        assert answer.headers["OpenStack-API-Version"] == f"compute {version}"
        assert answer.headers["X-OpenStack-Nova-API-Version"] == version
    expect_ok(await api.send("GET"), {"metadata": {"os_distro": "cirros"}})


@pytest.mark.parametrize("version", ["2.39", "2.104", "latest"])
async def test_every_verb_is_gone_from_2_39(open_metadata: OpenMetadata, version: str) -> None:
    api = await open_metadata(os_distro="cirros")
    echoed = "2.104" if version == "latest" else version
    async with api.unchanged():
        async for *_, answer in every_verb(api.client, api.id, api.token, version):
            expect_fault(answer, 404, "itemNotFound", NOT_FOUND, echoed)


async def test_v2_prefix_ignores_microversions_and_strips_unknown_keys(
    open_metadata: OpenMetadata, real_stack: StackInfo
) -> None:
    api = await open_metadata(os_distro="cirros")
    for prefix in (f"/v2/{real_stack.demo_a}", "/v2"):
        path = f"{prefix}/images/{api.id}/metadata"
        answer = await send(
            api.client,
            "POST",
            path,
            api.token,
            version="2.39",
            body={"metadata": {"a": "1"}, "extra": 1, "server": {}},
        )
        expect_ok(answer, {"metadata": {"os_distro": "cirros", "a": "1"}}, None)
        answer = await send(
            api.client,
            "PUT",
            f"{path}/a",
            api.token,
            version="3.0",
            headers={"X-OpenStack-Nova-API-Version": "2.50"},
            body={"meta": {"a": "2"}, "metadata": {"b": "1"}},
        )
        expect_ok(answer, {"meta": {"a": "2"}}, None)
        # Metadata keys are still checked, with the text of Nova's relaxed validator...
        body = {"metadata": {"bad/key": "x", "b": "2"}, "extra": 1}
        answer = await send(api.client, "POST", path, api.token, body=body)
        expect_fault(
            answer,
            400,
            "badRequest",
            "Invalid input for field/attribute metadata. Value: {'bad/key': 'x', 'b': '2'}. "
            "Additional properties are not allowed ('bad/key' was unexpected)",
            None,
        )
    # ...unless every key fails the pattern: Nova 34 then skips the check and stores them.
    path = f"/v2/images/{api.id}/metadata"
    answer = await send(api.client, "POST", path, api.token, body={"metadata": {"bad/key": "x"}})
    assert answer.status == 200
    assert answer.json()["metadata"]["bad/key"] == "x"
    # /v2.1 refuses the same extra key.
    answer = await api.send("POST", body={"metadata": {"a": "1"}, "extra": 1})
    expect_fault(
        answer, 400, "badRequest", "Additional properties are not allowed ('extra' was unexpected)"
    )


# ---------------------------------------------------------------------------------------
# contract.md D5: nothing but the named properties changes


async def apply_verb(api: Metadata, verb: str) -> JsonObject:
    """Run one write verb; return the properties it names (None = removed)."""
    if verb == "POST":
        body = {"metadata": {"os_distro": "ubuntu", "new_key": "v"}}
        expect_ok(
            await api.send("POST", body=body),
            {
                "metadata": {
                    **PROPS,
                    "block_device_mapping": BDM_DECODED,
                    "os_distro": "ubuntu",
                    "new_key": "v",
                }
            },
        )
        return {"os_distro": "ubuntu", "new_key": "v"}
    if verb == "PUT":
        wanted = {"os_distro": "ubuntu", "hw_disk_bus": "virtio", "block_device_mapping": BDM}
        expect_ok(await api.send("PUT", body={"metadata": wanted}), {"metadata": wanted})
        return {"os_distro": "ubuntu", "os_version": None}
    if verb == "PUT item":
        body = {"meta": {"os_version": "2"}}
        expect_ok(await api.send("PUT", "/os_version", body=body), body)
        return {"os_version": "2"}
    expect_empty(await api.send("DELETE", "/hw_disk_bus"))
    return {"hw_disk_bus": None}


@pytest.mark.parametrize("visibility", ["shared", "community", "private"])
@pytest.mark.parametrize("verb", ["POST", "PUT", "PUT item", "DELETE item"])
async def test_writes_change_only_the_named_properties(
    open_metadata: OpenMetadata, visibility: str, verb: str
) -> None:
    api = await open_metadata(
        **PROPS,
        block_device_mapping=BDM,
        visibility=visibility,
        name="d5",
        min_ram=512,
        min_disk=2,
        tags=["golden", "x86"],
    )
    before = await api.record()
    assert before["visibility"] == visibility
    named = await apply_verb(api, verb)
    expected = {k: v for k, v in {**before, **named}.items() if v is not None}
    after = await api.record()
    assert_only_changed(before, after, expected)
    assert after["visibility"] == visibility
    assert after["tags"] == before["tags"]


# ---------------------------------------------------------------------------------------
# contract.md D6: core and reserved keys


async def refuse_writes_naming(api: Metadata, image_id: str, key: str, message: str) -> None:
    """Every write that names *key* on *image_id* is refused with a 400 and *message*."""
    path = f"/v2.1/images/{image_id}/metadata"
    for method, url, body in (
        ("POST", path, {"metadata": {"ok": "1", key: "x"}}),
        ("PUT", path, {"metadata": {key: "x"}}),
        ("PUT", f"{path}/{key}", {"meta": {key: "x"}}),
        ("DELETE", f"{path}/{key}", None),
    ):
        answer = await call_verb(api.client, method, url, body, api.token)
        expect_fault(answer, 400, "badRequest", message)


@pytest.mark.parametrize("key", [*CORE_KEYS, *CORE_KEYS_MORE])
async def test_core_keys_are_refused_naming_the_key(open_metadata: OpenMetadata, key: str) -> None:
    api = await open_metadata(**PROPS, visibility="shared")
    message = (
        f"Metadata key '{key}' is a core image attribute and cannot be changed through "
        "the compute API."
    )
    async with api.unchanged():
        await refuse_writes_naming(api, api.id, key, message)


@pytest.mark.parametrize(
    "key",
    [
        "os_glance_foo",
        "os_glance_importing_to_stores",
        "os_glancex",
        "deleted",
        "deleted_at",
        "location",
    ],
)
async def test_reserved_keys_are_refused_naming_the_key(
    open_metadata: OpenMetadata, key: str
) -> None:
    api = await open_metadata(**PROPS)
    message = (
        f"Metadata key '{key}' is reserved by the image service and cannot be changed "
        "through the compute API."
    )
    async with api.unchanged():
        await refuse_writes_naming(api, api.id, key, message)
        # Refused before the image is read: the same answer for an image that does not exist.
        await refuse_writes_naming(api, MISSING, key, message)


async def test_schema_properties_marked_non_base_are_allowed(open_metadata: OpenMetadata) -> None:
    api = await open_metadata()
    before = await api.record()
    values = {
        "os_distro": "debian",
        "os_version": "13",
        "description": "Trixie",
        "instance_uuid": "8d2e3b9f-4c1a-4f7e-9b6d-2a5c8e1f0b37",
    }
    expect_ok(await api.send("POST", body={"metadata": values}), {"metadata": values})
    assert_only_changed(before, await api.record(), {**before, **values})
    body = {"meta": {"description": "Debian 13"}}
    expect_ok(await api.send("PUT", "/description", body=body), body)
    expect_empty(await api.send("DELETE", "/instance_uuid"))
    assert "instance_uuid" not in await api.record()


async def settled(api: Metadata, timeout: float = 15.0) -> JsonObject:
    """The record once the import task has let go (Glance drops ``os_glance_import_task``
    a moment after the image turns active)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        record = await api.record()
        if "os_glance_import_task" not in record or loop.time() > deadline:
            return record
        await asyncio.sleep(0.1)


async def test_put_keeps_glances_own_reserved_properties(
    make_shim: MakeShim, tokens: dict[str, str], glance: Glance, glance_api: GlanceApi
) -> None:
    """An imported image carries ``os_glance_*`` properties that only Glance may change.

    Nova's replace tried to remove them and got Glance's 403; the shim leaves them.
    """
    created = await asyncio.to_thread(
        glance.scratch, "alice", disk_format="raw", container_format="bare", os_distro="cirros"
    )
    await asyncio.to_thread(glance_api.stage, "alice", created["id"], b"y" * 1024)
    await asyncio.to_thread(glance_api.import_staged, "alice", created["id"])
    api = Metadata(await make_shim(), tokens["alice"], glance, created)
    before = await settled(api)
    reserved = {k: v for k, v in before.items() if k.startswith("os_glance")}
    assert reserved, before  # os_glance_importing_to_stores, os_glance_failed_import
    expect_ok(await api.send("GET"), {"metadata": {"os_distro": "cirros", **reserved}})
    expect_ok(await api.send("PUT", body={"metadata": {"a": "1"}}), {"metadata": {"a": "1"}})
    kept = {k: v for k, v in before.items() if k != "os_distro"}
    assert_only_changed(before, await api.record(), {**kept, "a": "1"})
    expect_ok(await api.send("GET"), {"metadata": {"a": "1", **reserved}})


# ---------------------------------------------------------------------------------------
# contract.md D7, quota, other projects, missing images, block_device_mapping


async def test_query_parameters_on_metadata_reads_are_ignored(open_metadata: OpenMetadata) -> None:
    api = await open_metadata(**PROPS)
    for query in ("?limit=abc", "?foo=bar&marker=x&limit=-1", "?os_distro=nope", "?&&="):
        expect_ok(await api.send("GET", query), {"metadata": PROPS})
        expect_ok(await api.send("GET", f"/os_version{query}"), {"meta": {"os_version": "0.6.2"}})


def numbered(count: int, start: int = 0) -> dict[str, str]:
    return {f"p{i:03d}": "v" for i in range(start, start + count)}


async def test_quota_boundary_counts_existing_properties(open_metadata: OpenMetadata) -> None:
    api = await open_metadata(**numbered(100))  # SHIM_METADATA_ITEMS default: 128
    # 100 existing + 27 = 127, then 128
    answer = await api.send("POST", body={"metadata": numbered(27, 100)})
    expect_ok(answer, {"metadata": numbered(127)})
    answer = await api.send("POST", body={"metadata": numbered(1, 127)})
    expect_ok(answer, {"metadata": numbered(128)})
    # appendix C, "metadata post quota 129": merged count 129
    async with api.unchanged():
        for method, suffix, body in (
            ("POST", "", {"metadata": numbered(1, 128)}),
            ("PUT", "/p128", {"meta": {"p128": "v"}}),
            ("PUT", "", {"metadata": numbered(129)}),
        ):
            answer = await api.send(method, suffix, body=body)
            expect_fault(answer, 403, "forbidden", LIMIT_EXCEEDED)
    # Changing an existing key keeps the count at 128; PUT counts only the request.
    answer = await api.send("POST", body={"metadata": {"p000": "w"}})
    expect_ok(answer, {"metadata": {**numbered(128), "p000": "w"}})
    body = {"meta": {"p001": "w"}}
    expect_ok(await api.send("PUT", "/p001", body=body), body)
    body = {"metadata": numbered(128, 1)}
    expect_ok(await api.send("PUT", body=body), body)
    assert expected.metadata(await api.record()) == numbered(128, 1)


async def test_quota_setting(make_shim: MakeShim, open_metadata: OpenMetadata) -> None:
    api = await open_metadata({"metadata_items": 2}, a="1")
    answer = await api.send("POST", body={"metadata": {"b": "2"}})
    expect_ok(answer, {"metadata": {"a": "1", "b": "2"}})
    answer = await api.send("POST", body={"metadata": {"c": "3"}})
    expect_fault(answer, 403, "forbidden", LIMIT_EXCEEDED)
    expect_ok(await api.send("PUT", body={"metadata": {}}), {"metadata": {}})
    zero = replace(api, client=await make_shim(metadata_items=0))
    # An empty set is never counted (Nova's check does nothing for it).
    expect_ok(await zero.send("POST", body={"metadata": {}}), {"metadata": {}})
    answer = await zero.send("PUT", "/a", body={"meta": {"a": "1"}})
    expect_fault(answer, 403, "forbidden", LIMIT_EXCEEDED)


async def test_unlimited_quota_leaves_the_limit_to_glance(open_metadata: OpenMetadata) -> None:
    api = await open_metadata({"metadata_items": -1}, **numbered(128))
    # The shim does not refuse the 129th property; Glance's own image_property_quota
    # (128) does, and its 413 stays a 413 (contract.md D4) instead of Nova's 500.
    async with api.unchanged():
        answer = await api.send("POST", body={"metadata": {"x": "1"}})
        expect_fault(
            answer,
            413,
            "overLimit",
            "HTTP 413 Request Entity Too Large: The limit has been exceeded on the number of "
            "allowed image properties. Attempted: 129, Maximum: 128",
        )
    body = {"metadata": numbered(5)}
    expect_ok(await api.send("PUT", body=body), body)


async def test_another_projects_private_image_is_not_found_on_every_verb(
    open_metadata: OpenMetadata, real_stack: StackInfo, tokens: dict[str, str]
) -> None:
    api = await open_metadata(os_distro="cirros", x="1", visibility="private")
    async with api.unchanged():
        for prefix in ("/v2.1", f"/v2.1/{real_stack.demo_b}"):
            async for *_, answer in every_verb(api.client, api.id, tokens["bob"], prefix=prefix):
                expect_fault(answer, 404, "itemNotFound", IMAGE_NOT_FOUND)


async def test_another_projects_community_image_is_readable_not_writable(
    open_metadata: OpenMetadata, tokens: dict[str, str]
) -> None:
    api = await open_metadata(os_distro="cirros", x="1", visibility="community")
    refused = f"Not authorized for image {api.id}."
    async with api.unchanged():
        async for method, *_, answer in every_verb(api.client, api.id, tokens["bob"]):
            if method == "GET":
                assert answer.status == 200, answer.body
            else:
                expect_fault(answer, 403, "forbidden", refused)


async def test_missing_image_is_not_found_on_every_verb(
    make_shim: MakeShim, tokens: dict[str, str]
) -> None:
    client = await make_shim()
    # appendix C, "metadata on missing image"
    for image_id in (MISSING, "not-a-uuid", "detail"):
        async for *_, answer in every_verb(client, image_id, tokens["alice"]):
            expect_fault(answer, 404, "itemNotFound", IMAGE_NOT_FOUND)


async def test_no_token_is_401_before_anything_else(
    open_metadata: OpenMetadata, real_stack: StackInfo
) -> None:
    api = await open_metadata(os_distro="cirros")
    async with api.unchanged():
        async for *_, answer in every_verb(api.client, api.id, None):
            assert answer.status == 401
            assert answer.json() == {
                "error": {
                    "code": 401,
                    "title": "Unauthorized",
                    "message": "The request you have made requires authentication.",
                }
            }
            keystone = real_stack.keystone_url
            assert answer.headers["WWW-Authenticate"] == f'Keystone uri="{keystone}"'


async def test_block_device_mapping_is_decoded_for_reading_and_stored_as_written(
    open_metadata: OpenMetadata,
) -> None:
    mappings = '[{"virtual": "root", "device": "/dev/vda"}]'
    api = await open_metadata(block_device_mapping=BDM, mappings=mappings, bdm_v2="True")
    shown = {
        "block_device_mapping": BDM_DECODED,
        "mappings": [{"virtual": "root", "device": "/dev/vda"}],
        "bdm_v2": "True",
    }
    expect_ok(await api.send("GET"), {"metadata": shown})
    # A POST of another key leaves Glance's strings byte for byte.
    answer = await api.send("POST", body={"metadata": {"x": "1"}})
    expect_ok(answer, {"metadata": {**shown, "x": "1"}})
    record = await api.record()
    assert (record["block_device_mapping"], record["mappings"]) == (BDM, mappings)
    # Writing the key stores the JSON string the client sent; reads decode it again.
    new_bdm = '[{"boot_index": 0, "source_type": "image", "uuid": "abc"}]'
    body = {"meta": {"block_device_mapping": new_bdm}}
    expect_ok(await api.send("PUT", "/block_device_mapping", body=body), body)
    assert (await api.record())["block_device_mapping"] == new_bdm
    answer = await api.send("GET", "/block_device_mapping")
    expect_ok(answer, {"meta": {"block_device_mapping": json.loads(new_bdm)}})
    wanted = {"block_device_mapping": new_bdm, "mappings": "not json"}
    expect_ok(await api.send("PUT", body={"metadata": wanted}), {"metadata": wanted})
    record = await api.record()
    assert (record["block_device_mapping"], record["mappings"]) == (new_bdm, "not json")
    # contract.md D3: a value that is not JSON is shown raw.
    expect_ok(
        await api.send("GET"),
        {"metadata": {"block_device_mapping": json.loads(new_bdm), "mappings": "not json"}},
    )


async def test_request_id_is_kept_and_the_same_on_both_headers(
    open_metadata: OpenMetadata,
) -> None:
    api = await open_metadata()
    mine = "req-0b8f2f8e-5f0a-4a4b-9e0e-4a7d2f1c3b5a"
    headers = {"X-Openstack-Request-Id": mine}
    answer = await api.send("POST", body={"metadata": {"a": "1"}}, headers=headers)
    expect_ok(answer, {"metadata": {"a": "1"}})
    assert answer.headers["x-openstack-request-id"] == mine


# ---------------------------------------------------------------------------------------
# What the real Glance cannot produce: a recording fake Glance

FAKE_RECORD: Final = {
    "id": IMG,
    "name": "fake",
    "status": "active",
    "visibility": "shared",
    "protected": False,
    "os_hidden": False,
    "owner": "aaaa",
    "min_ram": 0,
    "min_disk": 0,
    "size": 1024,
    "virtual_size": 1024,
    "checksum": None,
    "os_hash_algo": None,
    "os_hash_value": None,
    "container_format": "bare",
    "disk_format": "raw",
    "tags": ["t"],
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
    "self": f"/v2/images/{IMG}",
    "file": f"/v2/images/{IMG}/file",
    "schema": "/v2/schemas/image",
    "os_distro": "cirros",
    "old": "1",
    "os_glance_failed_import": "",
}


def image_calls(fake: RecordingUpstream) -> list[str]:
    """Methods of the calls on the image itself (the schema is fetched on the side)."""
    return [r.method for r in fake.requests if r.raw_path == f"/v2/images/{IMG}"]


def patches(fake: RecordingUpstream) -> list[Any]:
    sent = [r for r in fake.requests if r.method == "PATCH"]
    assert all(r.header("Content-Type") == PATCH_TYPE for r in sent)
    assert all(r.header("X-Auth-Token") == "tok" for r in sent)
    return [json.loads(r.body) for r in sent]


async def test_each_write_is_one_json_patch_of_properties_only(
    shim_over_fake: ShimOverFake,
) -> None:
    client, fake = await shim_over_fake(FAKE_RECORD, ("PATCH", Reply.json(FAKE_RECORD)))
    path = f"/v2.1/images/{IMG}/metadata"
    cases: list[tuple[str, str, Any, list[Any]]] = [
        (
            "POST",
            path,
            {"metadata": {"os_distro": "cirros", "new": "1"}},
            [
                {"op": "add", "path": "/os_distro", "value": "cirros"},
                {"op": "add", "path": "/new", "value": "1"},
            ],
        ),
        (
            "PUT",
            path,
            {"metadata": {"os_distro": "ubuntu", "n": "2"}},
            [
                {"op": "remove", "path": "/old"},
                {"op": "add", "path": "/os_distro", "value": "ubuntu"},
                {"op": "add", "path": "/n", "value": "2"},
            ],
        ),
        (
            "PUT",
            path,
            {"metadata": {"old": "1"}},
            [{"op": "remove", "path": "/os_distro"}, {"op": "add", "path": "/old", "value": "1"}],
        ),
        (
            "PUT",
            f"{path}/old",
            {"meta": {"old": "2"}},
            [{"op": "add", "path": "/old", "value": "2"}],
        ),
        ("DELETE", f"{path}/old", None, [{"op": "remove", "path": "/old"}]),
    ]
    for method, url, body, ops in cases:
        fake.reset()
        answer = await call_verb(client, method, url, body, "tok")
        assert answer.status in (200, 204), answer.body
        assert patches(fake) == [ops]
        assert image_calls(fake) == ["GET", "PATCH"]
        request_id = answer.headers["x-openstack-request-id"]
        assert {r.header("X-Openstack-Request-Id") for r in fake.requests} == {request_id}
    # No operations: no PATCH at all.
    fake.reset()
    expect_ok(
        await send(client, "POST", path, "tok", body={"metadata": {}}),
        {"metadata": {"os_distro": "cirros", "old": "1", "os_glance_failed_import": ""}},
    )
    assert image_calls(fake) == ["GET"]


@pytest.mark.parametrize(
    ("reply", "status", "name", "message"),
    [
        (
            Reply.json(
                {
                    "message": "There was a conflict when trying to complete your request."
                    "<br /><br />\nProperty old does not exist.\n\n",
                    "code": "409 Conflict",
                    "title": "Conflict",
                },
                status=409,
            ),
            409,
            "conflictingRequest",
            "HTTP 409 Conflict: There was a conflict when trying to complete your request.: "
            "Property old does not exist.",
        ),
        (
            Reply.json(
                {"message": "Image not found", "code": "404 Not Found", "title": "Not Found"},
                status=404,
            ),
            404,
            "itemNotFound",
            IMAGE_NOT_FOUND,
        ),
        (
            Reply(status=503),
            503,
            "serviceUnavailable",
            "The image service is unavailable. Please retry later.",
        ),
        (
            Reply(abort_before_response=True),
            503,
            "serviceUnavailable",
            "The image service is unavailable. Please retry later.",
        ),
    ],
)
async def test_patch_failures_after_the_read(
    shim_over_fake: ShimOverFake, reply: Reply, status: int, name: str, message: str
) -> None:
    """The image changed or vanished between the read and the PATCH, or Glance went away."""
    client, fake = await shim_over_fake(FAKE_RECORD, ("PATCH", reply))
    answer = await send(client, "DELETE", f"/v2.1/images/{IMG}/metadata/old", "tok")
    expect_fault(answer, status, name, message)
    assert image_calls(fake) == ["GET", "PATCH"]
    if status == 503:
        assert answer.headers["Retry-After"] == "5"
