"""openstacksdk's compute image metadata calls round-trip through the shim.

The SDK authenticates with a token against the real Keystone and reaches compute through
``compute_endpoint_override`` (the in-process shim), which writes to the real Glance. It
runs in a worker thread while the event loop serves the shim.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any, Final

import openstack.exceptions
import pytest
from aiohttp import web
from openstack.connection import Connection
from pytest_aiohttp import AiohttpClient

from shim.app import create_app
from tests.clients import OPENSTACKSDK_WARNINGS
from tests.integration.conftest import stack_settings
from tests.stack.fixtures import ScratchImages
from tests.stack.info import StackInfo
from tests.stack.rest import JsonObject
from tests.stack.seed import GlanceApi

pytestmark = [pytest.mark.integration, *OPENSTACKSDK_WARNINGS]

BDM: Final = '[{"boot_index": 0, "source_type": "image", "destination_type": "local"}]'
PROPS: Final = {"os_distro": "cirros", "hw_disk_bus": "virtio", "block_device_mapping": BDM}


@contextmanager
def sdk(stack: StackInfo, token: str, compute_url: str) -> Iterator[Connection]:
    conn = Connection(
        auth_type="v3token",
        auth={"auth_url": stack.keystone_v3, "token": token, "project_id": stack.demo_a},
        compute_endpoint_override=compute_url,
    )
    try:
        yield conn
    finally:
        conn.close()


AliceSdk = Callable[[], AbstractContextManager[Connection]]


@pytest.fixture
async def alice_sdk(
    aiohttp_client: AiohttpClient, real_stack: StackInfo, tokens: dict[str, str]
) -> AliceSdk:
    """Opens an SDK connection for alice to an in-process shim's ``/v2.1``."""
    client = await aiohttp_client(create_app(stack_settings(real_stack)))
    return partial(sdk, real_stack, tokens["alice"], str(client.make_url("/v2.1")))


def without_updated_at(record: JsonObject) -> JsonObject:
    return {k: v for k, v in record.items() if k != "updated_at"}


@pytest.mark.parametrize("with_project", [False, True], ids=["v2.1", "v2.1-project"])
async def test_get_set_delete_image_metadata_round_trip(
    aiohttp_client: AiohttpClient,
    real_stack: StackInfo,
    tokens: dict[str, str],
    scratch_images: ScratchImages,
    glance_api: GlanceApi,
    with_project: bool,
) -> None:
    app = create_app(stack_settings(real_stack))
    seen: list[tuple[str, str, int]] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        seen.append((request.method, request.path, response.status))

    app.on_response_prepare.append(record)
    client = await aiohttp_client(app)
    prefix = f"/v2.1/{real_stack.demo_a}" if with_project else "/v2.1"
    compute_url = str(client.make_url(prefix))
    image = await asyncio.to_thread(
        scratch_images,
        "alice",
        visibility="shared",
        disk_format="raw",
        container_format="bare",
        data=b"x" * 512,
        **PROPS,
    )
    image_id = image["id"]
    before = await asyncio.to_thread(glance_api.get, "alice", image_id)
    decoded = {
        **PROPS,
        "block_device_mapping": [
            {"boot_index": 0, "source_type": "image", "destination_type": "local"}
        ],
    }

    def run() -> dict[str, Any]:
        with sdk(real_stack, tokens["alice"], compute_url) as conn:
            results: dict[str, Any] = {}
            results["read"] = conn.compute.get_image_metadata(image_id).metadata
            results["set"] = conn.compute.set_image_metadata(
                image_id, os_distro="ubuntu", Label="UpdatedImage"
            ).metadata
            results["merged"] = conn.compute.get_image_metadata(image_id).metadata
            conn.compute.delete_image_metadata(image_id, keys=["Label", "hw_disk_bus"])
            results["after_delete"] = conn.compute.fetch_image_metadata(image_id).metadata
            with pytest.raises(openstack.exceptions.NotFoundException):
                conn.compute.delete_image_metadata(image_id, keys=["no-such-key"])
            conn.compute.delete_image_metadata(image_id)  # every key: PUT {"metadata": {}}
            results["emptied"] = conn.compute.get_image_metadata(image_id).metadata
            return results

    results = await asyncio.to_thread(run)
    assert results == {
        "read": decoded,
        "set": {"os_distro": "ubuntu", "Label": "UpdatedImage"},
        "merged": {**decoded, "os_distro": "ubuntu", "Label": "UpdatedImage"},
        "after_delete": {
            "os_distro": "ubuntu",
            "block_device_mapping": decoded["block_device_mapping"],
        },
        "emptied": {},
    }
    metadata_path = f"{prefix}/images/{image_id}/metadata"
    calls = [call for call in seen if call[1].startswith(f"{prefix}/images/")]
    # The SDK deletes the keys in set order.
    assert sorted(calls[3:5]) == [
        ("DELETE", f"{metadata_path}/Label", 204),
        ("DELETE", f"{metadata_path}/hw_disk_bus", 204),
    ]
    assert calls[:3] + calls[5:] == [
        ("GET", metadata_path, 200),
        ("POST", metadata_path, 200),
        ("GET", metadata_path, 200),
        ("GET", metadata_path, 200),
        ("DELETE", f"{metadata_path}/no-such-key", 404),
        ("PUT", metadata_path, 200),
        ("GET", metadata_path, 200),
    ]
    after = await asyncio.to_thread(glance_api.get, "alice", image_id)
    # Only the properties changed: the image is still shared, with its name, sizes, tags.
    assert without_updated_at(after) == without_updated_at(
        {k: v for k, v in before.items() if k not in PROPS}
    )
    assert after["visibility"] == "shared"


async def test_sdk_sees_nova_errors(alice_sdk: AliceSdk, scratch_images: ScratchImages) -> None:
    """Another project's private image is missing to the SDK; a bad key is a 400."""
    image = await asyncio.to_thread(scratch_images, "bob", visibility="private", x="1")
    own = await asyncio.to_thread(scratch_images, "alice", x="1")

    def run() -> list[tuple[type[Exception], int | None, str]]:
        errors: list[tuple[type[Exception], int | None, str]] = []
        with alice_sdk() as conn:
            attempts: list[Callable[[], object]] = [
                lambda: conn.compute.get_image_metadata(image["id"]),
                lambda: conn.compute.set_image_metadata(image["id"], y="2"),
                lambda: conn.compute.set_image_metadata(own["id"], **{"bad/key": "v"}),
                lambda: conn.compute.set_image_metadata(own["id"], name="renamed"),
            ]
            for attempt in attempts:
                with pytest.raises(openstack.exceptions.HttpException) as caught:
                    attempt()
                errors.append((type(caught.value), caught.value.status_code, str(caught.value)))
        return errors

    errors = await asyncio.to_thread(run)
    assert [(kind, status) for kind, status, _ in errors] == [
        (openstack.exceptions.NotFoundException, 404),
        (openstack.exceptions.NotFoundException, 404),
        (openstack.exceptions.BadRequestException, 400),
        (openstack.exceptions.BadRequestException, 400),
    ]
    assert "Image not found." in errors[0][2]
    assert "'bad/key' does not match any of the regexes" in errors[2][2]
    assert "Metadata key 'name' is a core image attribute" in errors[3][2]


async def test_delete_image_through_the_sdk(
    alice_sdk: AliceSdk, scratch_images: ScratchImages
) -> None:
    image = await asyncio.to_thread(scratch_images, "alice", name="to-delete")
    protected = await asyncio.to_thread(scratch_images, "alice", name="kept", protected=True)

    def run() -> None:
        with alice_sdk() as conn:
            assert conn.compute.get_image(image["id"]).name == "to-delete"
            conn.compute.delete_image(image["id"], ignore_missing=False)
            with pytest.raises(openstack.exceptions.NotFoundException):
                conn.compute.get_image(image["id"])
            with pytest.raises(openstack.exceptions.NotFoundException):
                conn.compute.delete_image(image["id"], ignore_missing=False)
            conn.compute.delete_image(image["id"])  # ignore_missing=True: no error
            with pytest.raises(openstack.exceptions.ForbiddenException) as caught:
                conn.compute.delete_image(protected["id"])
            assert "You are not allowed to delete the image." in str(caught.value)

    await asyncio.to_thread(run)
