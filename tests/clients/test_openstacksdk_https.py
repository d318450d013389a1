"""openstacksdk over TLS end to end: Keystone over HTTPS, the shim's HTTPS listener, and
behind it Glance over mutual TLS, every certificate from the test CA that the SDK is given
as its ``cacert`` (``verify``). Read and metadata routes, as a migrating user runs them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from openstack.connection import Connection
from yarl import URL

from tests.clients import OPENSTACKSDK_WARNINGS, password_login
from tests.fakes.shim_server import local_settings, served_shim
from tests.shim_fixtures import TEST_PAGE_SIZE
from tests.stack.catalogue import Catalogue
from tests.stack.fixtures import ScratchImages
from tests.stack.info import StackInfo
from tests.stack.tls import HttpsStack, Pki

pytestmark = [pytest.mark.integration, *OPENSTACKSDK_WARNINGS]


async def test_sdk_reads_and_writes_metadata_over_https(
    real_stack: StackInfo,
    https_stack: HttpsStack,
    pki: Pki,
    catalogue: Catalogue,
    scratch_images: ScratchImages,
) -> None:
    settings = local_settings(
        glance_url=URL(https_stack.glance_url),
        keystone_url=URL(https_stack.keystone_url),
        auth="keystone",
        glance_page_size=TEST_PAGE_SIZE,
        ca_file=str(pki.ca_file),
        client_cert=str(pki.client.cert),
        client_key=str(pki.client.key),
        tls_cert=str(pki.server.cert),
        tls_key=str(pki.server.key),
    )
    image = await asyncio.to_thread(
        scratch_images, "alice", disk_format="raw", container_format="bare", os_distro="cirros"
    )
    async with served_shim(settings) as shim:
        compute = f"https://localhost:{shim.running.api_port}/v2.1/{real_stack.demo_a}"

        def run() -> dict[str, Any]:
            auth = v3.Password(
                **password_login(real_stack, auth_url=f"{https_stack.keystone_url}/v3")
            )
            conn = Connection(
                session=ks_session.Session(auth=auth, verify=str(pki.ca_file)),
                region_name=real_stack.region,
                compute_endpoint_override=compute,
                compute_api_version="2.1",
            )
            try:
                return {
                    "listed": [i.id for i in conn.compute.images(details=True, limit=7)],
                    "one": conn.compute.get_image(catalogue.ids["snapshot-of-vm"]),
                    "set": conn.compute.set_image_metadata(image["id"], Label="tls").metadata,
                    "read": conn.compute.get_image_metadata(image["id"]).metadata,
                }
            finally:
                conn.close()

        result = await asyncio.to_thread(run)
    # The scratch image is alice's newest: first in Glance's default order.
    assert result["listed"] == [image["id"], *catalogue.listings["alice"]]
    assert (result["one"].name, result["one"].metadata["image_type"]) == (
        "snapshot-of-vm",
        "snapshot",
    )
    assert result["set"] == {"Label": "tls"}
    assert result["read"] == {"os_distro": "cirros", "Label": "tls"}
