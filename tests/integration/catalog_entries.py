"""Temporary Keystone catalogue entries for tests: endpoints in a region of their own.

`registered_endpoints` adds endpoints of one service type in a fresh, uniquely named
region (reusing the stack's service of that type if there is one, else creating it) and
removes everything it added afterwards, so tests that read the standard catalogue
(RegionOne) never see them. It is blocking (stdlib HTTP); async tests use
`endpoints_in_new_region`, which runs it in a thread.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager

from tests.stack.info import StackInfo
from tests.stack.rest import JsonObject, expect, request


def _call(stack: StackInfo, method: str, path: str, body: object, *ok: int) -> JsonObject:
    resp = request(
        method, f"{stack.keystone_v3}{path}", token=stack.system_admin_token(), json_body=body
    )
    expect(resp, *ok)
    return resp.json() if resp.body else {}


@contextmanager
def registered_endpoints(
    stack: StackInfo, service_type: str, urls: Mapping[str, str], name: str | None = None
) -> Iterator[str]:
    """Endpoints ``{interface: url}`` of *service_type* in a new region; yields its id."""
    region = f"shim-test-{uuid.uuid4().hex[:12]}"
    _call(stack, "POST", "/regions", {"region": {"id": region}}, 201)
    created_service = False
    service_id = ""
    endpoint_ids: list[str] = []
    try:
        services = _call(stack, "GET", f"/services?type={service_type}", None, 200)["services"]
        if services:
            service_id = str(services[0]["id"])
        else:
            service = {"type": service_type, "name": name or service_type}
            answer = _call(stack, "POST", "/services", {"service": service}, 201)
            service_id = str(answer["service"]["id"])
            created_service = True
        for interface, url in urls.items():
            endpoint = {
                "service_id": service_id,
                "interface": interface,
                "url": url,
                "region_id": region,
            }
            created = _call(stack, "POST", "/endpoints", {"endpoint": endpoint}, 201)
            endpoint_ids.append(str(created["endpoint"]["id"]))
        yield region
    finally:
        for endpoint_id in endpoint_ids:
            _call(stack, "DELETE", f"/endpoints/{endpoint_id}", None, 204)
        if created_service:
            _call(stack, "DELETE", f"/services/{service_id}", None, 204)
        _call(stack, "DELETE", f"/regions/{region}", None, 204)


@asynccontextmanager
async def endpoints_in_new_region(
    stack: StackInfo, service_type: str, urls: Mapping[str, str], name: str | None = None
) -> AsyncIterator[str]:
    """`registered_endpoints` for async tests: Keystone is called off the event loop."""
    registration = registered_endpoints(stack, service_type, urls, name)
    region = await asyncio.to_thread(registration.__enter__)
    try:
        yield region
    finally:
        await asyncio.to_thread(registration.__exit__, None, None, None)
