from __future__ import annotations
import asyncio, json
from typing import Any
import openstack, pytest
from shim.app import create_app
from tests.integration.conftest import stack_settings
from tests.integration.catalog_entries import endpoints_in_new_region

pytestmark = pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning")

@pytest.mark.parametrize("cap,ver", [("off","2.90"), ("nova","2.90"), ("nova", None)])
@pytest.mark.parametrize("path", ["/v2.1", "/v2.1/$(project_id)s"])
async def test_x(aiohttp_client, real_stack, catalogue, path, cap, ver):
    seen = []
    app = create_app(stack_settings(real_stack, auth="keystone", glance_url=None, microversion_cap=cap))
    async def record(request, response):
        seen.append((request.method, request.path_qs, response.status, request.headers.get("OpenStack-API-Version")))
    app.on_response_prepare.append(record)
    client = await aiohttp_client(app)
    base = str(client.make_url("")).rstrip("/")
    async with endpoints_in_new_region(real_stack, "compute", {"public": base + path}, "nova") as region:
        def run():
            kw = {}
            if ver: kw["compute_api_version"] = ver
            conn = openstack.connect(auth_url=real_stack.keystone_v3, username="alice", password="pw-alice",
                project_name="demo-a", user_domain_name="Default", project_domain_name="Default", region_name=region, **kw)
            try:
                return [i.id for i in conn.compute.images(limit=7)], conn.compute.find_image("cirros-active")
            except Exception as e:
                return repr(e), None
            finally:
                conn.close()
        r = await asyncio.to_thread(run)
    print(cap, ver, path, r[0] if isinstance(r[0], str) else len(r[0]), r[1] and r[1].id)
    for s in seen: print("  ", s)
