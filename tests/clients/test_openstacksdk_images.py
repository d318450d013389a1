"""openstacksdk, a real client, reading images through the shim over the real stack."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from openstack.connection import Connection

from tests.clients import OPENSTACKSDK_WARNINGS, password_login
from tests.shim_fixtures import MakeShim
from tests.stack.catalogue import Catalogue
from tests.stack.info import StackInfo

pytestmark = [pytest.mark.integration, *OPENSTACKSDK_WARNINGS]


def connect(stack: StackInfo, user: str, project: str, compute_url: str) -> Connection:
    """A password session against the real Keystone; compute pointed at the shim."""
    return Connection(
        session=ks_session.Session(auth=v3.Password(**password_login(stack, user, project))),
        region_name=stack.region,
        compute_endpoint_override=compute_url,
        compute_api_version="2.1",
    )


async def test_list_get_find_and_paging(
    make_shim: MakeShim, real_stack: StackInfo, catalogue: Catalogue
) -> None:
    client = await make_shim()
    compute = f"{str(client.make_url('')).rstrip('/')}/v2.1/{real_stack.demo_a}"
    listed = catalogue.listings["alice"]

    def run() -> dict[str, Any]:
        conn = connect(real_stack, "alice", "demo-a", compute)
        try:
            detailed = list(conn.compute.images(details=True))
            paged = list(conn.compute.images(details=True, limit=7))
            basic = list(conn.compute.images(details=False, status="ACTIVE"))
            one = conn.compute.get_image(catalogue.ids["snapshot-of-vm"])
            found = conn.compute.find_image("cirros-active")
            absent = conn.compute.find_image("no-such-image")
            return {
                "detailed": detailed,
                "paged": paged,
                "basic": basic,
                "one": one,
                "found": found,
                "absent": absent,
            }
        finally:
            conn.close()

    result = await asyncio.to_thread(run)
    assert [image.id for image in result["detailed"]] == listed
    assert [image.id for image in result["paged"]] == listed
    assert {image.id for image in result["basic"]} == {
        catalogue.ids[label]
        for label in catalogue.listed("alice")
        if catalogue.image(label)["status"] == "active"
    }
    one = result["one"]
    assert one.name == "snapshot-of-vm"
    assert one.status == "ACTIVE"
    assert one.progress == 100
    assert one.min_ram == 512
    assert one.min_disk == 2
    assert one.metadata["image_type"] == "snapshot"
    assert result["found"].id == catalogue.ids["cirros-active"]
    assert result["absent"] is None
