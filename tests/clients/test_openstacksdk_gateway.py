"""openstacksdk discovers the compute version through the shim and stays on it.

The compute endpoint given to openstacksdk is the shim's unversioned root, as a catalogue
entry would be. The SDK reads the version document, follows its ``v2.1`` link and then the
links of every answer; each of those requests must reach the shim, never the Nova behind it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from openstack.connection import Connection
from yarl import URL

from tests.clients import OPENSTACKSDK_WARNINGS, password_login
from tests.shim_fixtures import MakeShim
from tests.stack.info import StackInfo
from tests.stack.rest import request as rest

pytestmark = [pytest.mark.integration, *OPENSTACKSDK_WARNINGS]


@pytest.fixture
def two_flavors(real_stack: StackInfo, tokens: dict[str, str]) -> Iterator[list[str]]:
    """Two public flavors made by admin on Nova, so a one-item page has a next link."""
    ids: list[str] = []
    try:
        for _ in range(2):
            name = f"sdk-{uuid.uuid4().hex[:8]}"
            body = {"flavor": {"name": name, "ram": 64, "vcpus": 1, "disk": 1}}
            url = f"{real_stack.nova_url}/v2.1/flavors"
            created = rest("POST", url, token=tokens["admin"], json_body=body)
            assert created.status == 200, created.describe()
            ids.append(created.json()["flavor"]["id"])
        yield ids
    finally:
        for flavor in ids:
            rest("DELETE", f"{real_stack.nova_url}/v2.1/flavors/{flavor}", token=tokens["admin"])


@pytest.mark.parametrize("nova", ["nova_url", "nova_proxy_headers_url"])
async def test_every_request_after_discovery_goes_to_the_shim(
    make_shim: MakeShim,
    real_stack: StackInfo,
    request: pytest.FixtureRequest,
    nova: str,
    two_flavors: list[str],
) -> None:
    nova_base = request.getfixturevalue(nova)
    client = await make_shim(nova_url=URL(nova_base))
    shim = str(client.make_url("/")).rstrip("/")
    seen: list[str] = []

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append(response.url)

    def run() -> dict[str, Any]:
        session = ks_session.Session(auth=v3.Password(**password_login(real_stack)))
        session.session.hooks["response"].append(record)
        conn = Connection(
            session=session,
            region_name=real_stack.region,
            compute_endpoint_override=shim + "/",
            compute_api_version="2",
        )
        try:
            flavors = list(conn.compute.flavors(details=True))
            paged = list(conn.compute.flavors(details=False, limit=1))
            keypairs = list(conn.compute.keypairs())
            return {
                "endpoint": conn.compute.get_endpoint(),
                "flavors": flavors,
                "paged": paged,
                "keypairs": keypairs,
            }
        finally:
            conn.close()

    result = await asyncio.to_thread(run)
    assert result["endpoint"].rstrip("/") == f"{shim}/v2.1"
    assert set(two_flavors) <= {f.id for f in result["flavors"]}
    # One flavor a page: every further page came from a next link the shim handed out.
    assert [f.id for f in result["paged"]] == [f.id for f in result["flavors"]]
    assert len([url for url in seen if "marker=" in url]) >= len(result["flavors"])
    compute = [url for url in seen if not url.startswith(real_stack.keystone_url)]
    assert f"{shim}/" in compute  # the version document was read, through the shim
    assert any(url.startswith(f"{shim}/v2.1/flavors") for url in compute)
    assert [url for url in compute if not url.startswith(shim + "/")] == []
    assert not any(nova_base in url for url in seen)
