"""Who still calls: ``nova_image_shim_legacy_callers_total{client, project}`` by auth mode.

The project comes from the URL in ``passthrough`` mode (nobody vouches for anything else)
and from the trusted front's ``X-Project-Id`` in ``trusted-headers`` mode; ``unknown``
otherwise, and never a token. Keystone mode, where it comes from the validated token, is
checked against the real Keystone in ``tests/integration/test_prometheus.py``.
"""

from __future__ import annotations

import time
import uuid

import aiohttp

from shim import metrics
from tests.fakes.images import IMAGE_ID
from tests.fakes.shim_server import local_settings, served_shim
from tests.inprocess.conftest import FakeGlance

TOKEN = "canaryTOK-callers-5d1f0e9a7b3c"
SERIES = "nova_image_shim_legacy_callers_total"


def callers(client: str, project: str) -> float:
    value = metrics.get().registry.get_sample_value(SERIES, {"client": client, "project": project})
    return value or 0.0


def last_seen(client: str, project: str) -> float | None:
    return metrics.get().registry.get_sample_value(
        "nova_image_shim_legacy_caller_last_seen_timestamp_seconds",
        {"client": client, "project": project},
    )


async def test_passthrough_counts_the_url_project_or_unknown(
    glance: FakeGlance,
) -> None:
    project = uuid.uuid4().hex
    settings = local_settings(glance_url=glance[1])
    before = callers("openstacksdk", project), callers("gophercloud", "unknown")
    started = time.time()
    async with served_shim(settings) as shim, aiohttp.ClientSession() as client:
        sdk = {"X-Auth-Token": TOKEN, "User-Agent": "openstacksdk/4.5.0"}
        for path in (f"v2.1/{project}/images/detail", f"v2/{project}/images/{IMAGE_ID}"):
            async with client.get(shim.url / path, headers=sdk) as response:
                assert response.status == 200
        go = {"X-Auth-Token": TOKEN, "User-Agent": "gophercloud/2"}
        async with client.get(shim.url / "v2.1/images", headers=go) as response:
            assert response.status == 200
        async with client.get(shim.metrics_url / "metrics") as response:
            exposition = await response.text()
    assert callers("openstacksdk", project) == before[0] + 2
    seen = last_seen("openstacksdk", project)
    assert seen is not None
    assert started <= seen <= time.time()
    assert callers("gophercloud", "unknown") == before[1] + 1
    assert f'{SERIES}{{client="openstacksdk",project="{project}"}}' in exposition
    assert TOKEN not in exposition


async def test_trusted_headers_count_the_vouched_project_never_a_token(
    glance: FakeGlance,
) -> None:
    project = uuid.uuid4().hex
    settings = local_settings(glance_url=glance[1], auth="trusted-headers")
    before = callers("curl", project), callers("curl", "unknown")
    async with served_shim(settings) as shim, aiohttp.ClientSession() as client:
        vouched = {"X-Project-Id": project, "X-User-Id": "alice-user-id", "User-Agent": "curl/8"}
        async with client.get(shim.url / "v2.1/images", headers=vouched) as response:
            assert response.status == 200
        # A project the front did not vouch for (no headers): 401, project unknown.
        async with client.get(shim.url / "v2.1/images", headers={"User-Agent": "curl/8"}) as r:
            assert r.status == 401
        # A token where the project id belongs, and a user name-like free text: unknown.
        for odd in (TOKEN, "Alice Smith"):
            headers = {"X-Project-Id": odd, "X-Auth-Token": TOKEN, "User-Agent": "curl/8"}
            async with client.get(shim.url / "v2.1/images", headers=headers) as response:
                assert response.status == 200
        async with client.get(shim.metrics_url / "metrics") as response:
            exposition = await response.text()
    assert callers("curl", project) == before[0] + 1
    assert callers("curl", "unknown") == before[1] + 3
    assert TOKEN not in exposition
    assert "alice-user-id" not in exposition
    assert "Alice Smith" not in exposition


async def test_more_projects_than_the_bound_count_as_other(
    glance: FakeGlance,
) -> None:
    # The label set is per process: leave room for exactly two more projects.
    room = len(metrics.get().caller_projects) + 2
    settings = local_settings(glance_url=glance[1], caller_projects_max=room)
    projects = [uuid.uuid4().hex for _ in range(5)]
    other = callers("fog", "other")
    async with served_shim(settings) as shim, aiohttp.ClientSession() as client:
        for project in projects:
            headers = {"X-Auth-Token": TOKEN, "User-Agent": "fog/2.0"}
            async with client.get(shim.url / f"v2.1/{project}/images", headers=headers) as r:
                assert r.status == 200
    assert [callers("fog", p) for p in projects] == [1, 1, 0, 0, 0]
    assert callers("fog", "other") == other + 3
