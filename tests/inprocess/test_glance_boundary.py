"""The Glance boundary under cases a real Glance cannot produce: a recording, scriptable
upstream (a real aiohttp app) stands in for it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient, AiohttpServer

from shim.app import create_app
from shim.settings import Settings
from tests.fakes import RecordingUpstream, Reply, refused_url
from tests.fakes.images import SCHEMA, glance_image, page
from tests.fakes.net import as_written

TOKEN = "gAAAAAB-boundary-token-never-logged"


NOT_FOUND = {"itemNotFound": {"code": 404, "message": "Image not found."}}
BAD_ANSWER = {"computeFault": {"code": 502, "message": "Invalid response from the image service"}}

ShimOver = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def shim_over(
    fake: RecordingUpstream, aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient
) -> ShimOver:
    """Starts a shim whose Glance is ``fake`` (with the image schema; pages of two images);
    its keyword arguments change the shim's settings."""

    async def start(**overrides: Any) -> TestClient[Any, Any]:
        url = await fake.start(aiohttp_server)
        fake.on("/v2/schemas/image", Reply.json(SCHEMA))
        values: dict[str, Any] = {"glance_url": url, "metrics_listen": None, "glance_page_size": 2}
        values.update(overrides)
        return await aiohttp_client(create_app(Settings(**values)))

    return start


async def answer(client: TestClient[Any, Any], path: str) -> tuple[int, Any]:
    """The status and JSON body of a GET of *path* with a token."""
    async with client.get(path, headers={"X-Auth-Token": TOKEN}) as response:
        return response.status, await response.json()


async def test_token_request_id_and_accept_reach_glance_and_schema_is_fetched_once(
    fake: RecordingUpstream, shim_over: ShimOver
) -> None:
    client = await shim_over()
    fake.on("/v2/images/abc", Reply.json(glance_image(1)))
    own_id = f"req-{uuid.uuid4()}"
    for headers in ({"X-Openstack-Request-Id": own_id}, {"X-Openstack-Request-Id": "bogus"}):
        async with client.get(
            "/v2.1/images/abc", headers={"X-Auth-Token": TOKEN, **headers}
        ) as response:
            assert response.status == 200
            answered_id = response.headers["x-openstack-request-id"]
        sent = [r for r in fake.requests if r.raw_path == "/v2/images/abc"][-1]
        assert sent.header("X-Auth-Token") == TOKEN
        assert sent.header("Accept") == "application/json"
        assert sent.header("X-Openstack-Request-Id") == answered_id
    shows = [r for r in fake.requests if r.raw_path == "/v2/images/abc"]
    assert shows[0].header("X-Openstack-Request-Id") == own_id
    assert shows[1].header("X-Openstack-Request-Id") != "bogus"
    assert [r.raw_path for r in fake.requests].count("/v2/schemas/image") == 1


@pytest.mark.parametrize(
    ("method", "path", "glance_path"),
    [
        # contract.md D14: Glance on PostgreSQL answers 500 to a NUL; no image has one, so
        # Glance is not asked.
        ("GET", "/v2.1/images/a%00b", None),
        ("DELETE", "/v2.1/images/%00", None),
        ("GET", "/v2.1/images/%00/metadata", None),
        # Any other id is one path segment for Glance, however it is encoded.
        ("GET", "/v2.1/images/%2E%2E", "/v2/images/%2E%2E"),
        ("GET", "/v2.1/images/..%3F", "/v2/images/%2E%2E%3F"),
        ("GET", "/v2.1/images/a%23b", "/v2/images/a%23b"),
        ("GET", "/v2.1/images/x%0D%0AX-Evil:%201", "/v2/images/x%0D%0AX-Evil%3A%201"),
    ],
)
async def test_hostile_ids_are_not_found_and_stay_one_glance_path_segment(
    fake: RecordingUpstream, shim_over: ShimOver, method: str, path: str, glance_path: str | None
) -> None:
    client = await shim_over()
    fake.default = Reply.json({"message": "No image found"}, status=404)
    url = as_written(client, path)
    async with client.session.request(method, url, headers={"X-Auth-Token": TOKEN}) as response:
        assert response.status == 404
        assert await response.json() == NOT_FOUND
    asked = [r for r in fake.requests if r.raw_path.startswith("/v2/images/")]
    assert [r.raw_path for r in asked] == ([glance_path] if glance_path else [])
    assert not any("x-evil" in r.header_names for r in fake.requests)


async def test_query_values_are_encoded_for_glance(
    fake: RecordingUpstream, shim_over: ShimOver
) -> None:
    client = await shim_over()
    fake.on("/v2/images", page(0, 0, full=False))
    query = "name=a%26limit%3D1&changes-since=2026-01-01T00:00:00%2B02:00&marker=m%23x"
    async with client.get(f"/v2.1/images?{query}", headers={"X-Auth-Token": TOKEN}) as response:
        assert response.status == 200
    sent = fake.requests[-1]
    assert sent.query_string == (
        "name=a%26limit%3D1&updated_at=gte:2026-01-01T00:00:00%2B02:00&limit=2&marker=m%23x"
    )


async def test_unpaged_list_streams_pages_and_aborts_if_glance_fails_midway(
    fake: RecordingUpstream, shim_over: ShimOver
) -> None:
    client = await shim_over(glance_retries=0)
    fake.on(
        "/v2/images",
        page(0, 2),
        page(2, 2),
        Reply(status=200, headers=(("Content-Type", "application/json"),),
              chunks=[b'{"images": [', b"{}" * 100], abort_after=20),
    )  # fmt: skip
    async with client.get("/v2.1/images/detail", headers={"X-Auth-Token": TOKEN}) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    # And a healthy walk afterwards answers in full.
    fake.on("/v2/images", page(0, 2), page(2, 2), page(4, 1, full=False))
    async with client.get("/v2.1/images/detail", headers={"X-Auth-Token": TOKEN}) as response:
        body = await response.json()
    assert [image["name"] for image in body["images"]] == [f"image-{i}" for i in range(5)]


async def test_a_record_that_cannot_be_rendered_breaks_the_stream_or_is_a_502(
    fake: RecordingUpstream, shim_over: ShimOver
) -> None:
    client = await shim_over()
    broken = page(2, 2)
    document = orjson.loads(broken.body)
    document["images"][1]["created_at"] = "yesterday"  # views.py: BadUpstreamResponse
    # On a later page the headers are out: the list must not end as if it were whole.
    fake.on("/v2/images", page(0, 2), Reply.json(document))
    async with client.get("/v2.1/images/detail", headers={"X-Auth-Token": TOKEN}) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    # On the only page, nothing is out yet: Nova's fault, as for any bad Glance answer.
    del document["next"]
    fake.on("/v2/images", Reply.json(document))
    assert await answer(client, "/v2.1/images/detail") == (502, BAD_ANSWER)


async def test_glance_5xx_is_retried_within_budget_then_503(
    fake: RecordingUpstream, shim_over: ShimOver
) -> None:
    client = await shim_over(glance_retries=2)
    fake.on("/v2/images/abc", Reply(status=503))
    async with client.get("/v2.1/images/abc", headers={"X-Auth-Token": TOKEN}) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
    assert [r.raw_path for r in fake.requests].count("/v2/images/abc") == 3
    # A transient failure is absorbed by a retry.
    fake.on("/v2/images/abc", Reply(status=502), Reply.json(glance_image(7)))
    async with client.get("/v2.1/images/abc", headers={"X-Auth-Token": TOKEN}) as response:
        assert response.status == 200
        assert (await response.json())["image"]["name"] == "image-7"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=200, headers=(("Content-Type", "application/json"),), body=b"{not json"),
        Reply.json({"images": "not a list"}),
        Reply.json([1, 2, 3]),
        Reply.json({"images": [glance_image(i) for i in range(200)]}),  # over the size cap
    ],
)
async def test_malformed_glance_answers_are_502(
    fake: RecordingUpstream, shim_over: ShimOver, reply: Reply
) -> None:
    client = await shim_over(glance_max_body=16 * 1024)
    fake.on("/v2/images", reply)
    assert await answer(client, "/v2.1/images?limit=2") == (502, BAD_ANSWER)


async def test_glance_401_becomes_keystones_401_with_glances_challenge(
    fake: RecordingUpstream, shim_over: ShimOver
) -> None:
    client = await shim_over()
    fake.on("/v2/images", Reply(status=401, headers=(
        ("WWW-Authenticate", 'Keystone uri="http://keystone.example:5000"'),)))  # fmt: skip
    async with client.get("/v2.1/images", headers={"X-Auth-Token": TOKEN}) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Keystone uri="http://keystone.example:5000"'
        assert await response.json() == {
            "error": {
                "code": 401,
                "title": "Unauthorized",
                "message": "The request you have made requires authentication.",
            }
        }


async def test_glance_refusing_connections_is_503(aiohttp_client: AiohttpClient) -> None:
    settings = Settings(
        glance_url=refused_url(), metrics_listen=None, glance_retries=1, glance_timeout=2.0
    )
    client = await aiohttp_client(create_app(settings))
    async with client.get("/v2.1/images/abc", headers={"X-Auth-Token": TOKEN}) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
