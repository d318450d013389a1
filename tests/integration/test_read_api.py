"""List, detail and show through the shim against the real Glance: whole bodies, headers.

Every test runs twice, once with each image renderer (``SHIM_RENDERER=c`` and ``python``):
installations without a C compiler take the pure-Python road, and must answer the same.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from aiohttp.test_utils import TestClient

from shim.keys import RENDERER
from shim.settings import RendererChoice
from tests.integration import expected
from tests.shim_fixtures import MakeShim
from tests.stack.catalogue import INSTANCE_UUID, Catalogue
from tests.stack.info import StackInfo

pytestmark = pytest.mark.integration

Client = TestClient[Any, Any]
VERSION_HEADERS = {"OpenStack-API-Version": "compute 2.35"}


@pytest.fixture(params=["c", "python"], ids=["renderer=c", "renderer=python"])
def shim_renderer(request: pytest.FixtureRequest) -> RendererChoice:
    choice: RendererChoice = request.param
    return choice


async def test_each_run_uses_the_renderer_it_names(
    client: Client, shim_renderer: RendererChoice
) -> None:
    assert client.app is not None
    assert client.app[RENDERER].name == shim_renderer


@pytest.fixture
async def client(make_shim: MakeShim) -> Client:
    """A shim with the default settings (and this run's renderer)."""
    return await make_shim()


def base_of(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


async def get_json(
    client: Client, path: str, token: str | None, **headers: str
) -> tuple[int, Any, Any]:
    if token is not None:
        headers["X-Auth-Token"] = token
    async with client.get(path, headers=headers) as response:
        body = await response.read()
        return response.status, response.headers, orjson.loads(body) if body else None


async def assert_shows(client: Client, stack: StackInfo, token: str, glance: Any) -> Any:
    """``GET /v2.1/images/{id}`` answers 200 with exactly Nova's view of the *glance* record;
    returns the body."""
    code, _, body = await get_json(client, f"/v2.1/images/{glance['id']}", token)
    assert code == 200
    assert body == {
        "image": expected.detail(glance, base_of(client), "v2.1", None, stack.glance_url)
    }
    return body


def prefixes(stack: StackInfo) -> list[tuple[str, str, str | None]]:
    """(path prefix, version segment in links, project id in links) for the four forms."""
    return [
        (f"/v2.1/{stack.demo_a}", "v2.1", stack.demo_a),
        ("/v2.1", "v2.1", None),
        (f"/v2/{stack.demo_a}", "v2", stack.demo_a),
        ("/v2", "v2", None),
    ]


async def test_show_snapshot_whole_body_under_every_prefix(
    client: Client, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    base = base_of(client)
    glance = catalogue.image("snapshot-of-vm")
    image_id = glance["id"]
    for prefix, version, project in prefixes(real_stack):
        status, headers, body = await get_json(
            client, f"{prefix}/images/{image_id}", tokens["alice"]
        )
        scope = f"/{project}" if project else ""
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        assert body == {
            "image": {
                "id": image_id,
                "name": "snapshot-of-vm",
                "minRam": 512,
                "minDisk": 2,
                "metadata": {
                    "image_type": "snapshot",
                    "instance_uuid": INSTANCE_UUID,
                    "auto_disk_config": "True",
                    "bdm_v2": "True",
                    "root_device_name": "/dev/vda",
                    "os_type": "linux",
                    "block_device_mapping": expected.SNAPSHOT_BDM,
                },
                "created": glance["created_at"],
                "updated": glance["updated_at"],
                "status": "ACTIVE",
                "progress": 100,
                "OS-EXT-IMG-SIZE:size": glance["size"],
                "links": expected.links(image_id, base, version, project, real_stack.glance_url),
                "server": {
                    "id": INSTANCE_UUID,
                    "links": [
                        {
                            "rel": "self",
                            "href": f"{base}/{version}{scope}/servers/{INSTANCE_UUID}",
                        },
                        {"rel": "bookmark", "href": f"{base}{scope}/servers/{INSTANCE_UUID}"},
                    ],
                },
                "OS-DCF:diskConfig": "AUTO",
            }
        }
        assert isinstance(glance["size"], int)
        assert glance["size"] > 0
        assert headers["x-openstack-request-id"].startswith("req-")
        assert headers["x-compute-request-id"] == headers["x-openstack-request-id"]
        if version == "v2.1":
            assert headers["OpenStack-API-Version"] == "compute 2.1"
            assert headers["X-OpenStack-Nova-API-Version"] == "2.1"
            assert headers.getall("Vary") == [
                "OpenStack-API-Version",
                "X-OpenStack-Nova-API-Version",
            ]
        else:
            assert "OpenStack-API-Version" not in headers
            assert "X-OpenStack-Nova-API-Version" not in headers
            assert "Vary" not in headers


# docs/nova.md §4.2 from Nova's side: each status and progress, and the catalogue's images of
# the Glance statuses shown so.
SHOWN_AS: Final = {
    ("ACTIVE", 100): ["status-active"],
    ("SAVING", 25): ["status-queued"],
    ("SAVING", 50): ["status-saving"],
    ("ERROR", 0): ["status-killed"],
    ("DELETED", 0): ["status-pending_delete", "status-deleted"],
    ("UNKNOWN", 0): [
        "status-deactivated",
        "status-uploading",
        "status-importing",
        "status-unknown",
    ],
}


@pytest.mark.parametrize(
    ("label", "status", "progress"),
    [(label, *shown) for shown, labels in SHOWN_AS.items() for label in labels],
)
async def test_show_maps_every_glance_status(
    client: Client,
    real_stack: StackInfo,
    tokens: dict[str, str],
    catalogue: Catalogue,
    label: str,
    status: str,
    progress: int,
) -> None:
    body = await assert_shows(client, real_stack, tokens["alice"], catalogue.image(label))
    assert body["image"]["status"] == status
    assert body["image"]["progress"] == progress


async def test_show_odd_images_field_for_field(
    client: Client, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    """Queued (null size, no formats), unnamed, broken JSON properties, unicode names."""
    queued = catalogue.image("status-queued")
    _, _, body = await get_json(client, f"/v2.1/images/{queued['id']}", tokens["alice"])
    assert queued["size"] is None
    assert body["image"]["OS-EXT-IMG-SIZE:size"] == 0
    assert body["image"]["metadata"] == {}

    unnamed = catalogue.image("<unnamed>")
    _, _, body = await get_json(client, f"/v2.1/images/{unnamed['id']}", tokens["alice"])
    assert body["image"]["name"] is None

    broken = catalogue.image("bdm-invalid-json")
    _, _, body = await get_json(client, f"/v2.1/images/{broken['id']}", tokens["alice"])
    assert body["image"]["metadata"] == {
        "block_device_mapping": "[{not json",  # docs/contract.md D3: left raw
        "auto_disk_config": "False",
        "mappings": [{"virtual": "root", "device": "/dev/vda"}],
    }
    assert body["image"]["OS-DCF:diskConfig"] == "MANUAL"

    garbage = catalogue.image("mappings-invalid-json")
    _, _, body = await get_json(client, f"/v2.1/images/{garbage['id']}", tokens["alice"])
    assert body["image"]["metadata"]["mappings"] == "{{broken"
    assert body["image"]["OS-DCF:diskConfig"] == "MANUAL"

    for label in ("Ünïcødé образ 镜像 ✓", 'spaces, commas & "quotes"', "cirros-active"):
        await assert_shows(client, real_stack, tokens["alice"], catalogue.image(label))


async def test_unpaged_detail_returns_every_visible_image_in_glance_order(
    client: Client, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    base = base_of(client)
    listed = catalogue.listed("alice")
    assert len(listed) > 5 * 10  # spans several Glance pages of 10
    for prefix, version, project in prefixes(real_stack):
        status, headers, body = await get_json(client, f"{prefix}/images/detail", tokens["alice"])
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        assert body == {
            "images": [
                expected.detail(
                    catalogue.image(label), base, version, project, real_stack.glance_url
                )
                for label in listed
            ]
        }


async def test_unpaged_basic_list(
    client: Client, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    base = base_of(client)
    status, _, body = await get_json(client, f"/v2.1/{real_stack.demo_a}/images", tokens["alice"])
    assert status == 200
    assert body == {
        "images": [
            expected.basic(
                catalogue.image(label), base, "v2.1", real_stack.demo_a, real_stack.glance_url
            )
            for label in catalogue.listed("alice")
        ]
    }


async def test_other_projects_see_their_own_view(
    client: Client, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    _, _, body = await get_json(client, "/v2.1/images", tokens["bob"])
    assert [image["id"] for image in body["images"]] == catalogue.listings["bob"]
    assert catalogue.ids["private-b"] in catalogue.listings["bob"]
    assert catalogue.ids["cirros-active"] not in catalogue.listings["bob"]


@pytest.mark.parametrize("collection", ["images", "images/detail"])
async def test_paging_with_limit_follows_next_links_to_the_end(
    client: Client,
    real_stack: StackInfo,
    tokens: dict[str, str],
    catalogue: Catalogue,
    collection: str,
) -> None:
    base = base_of(client)
    listed = [catalogue.ids[label] for label in catalogue.listed("alice")]
    seen: list[str] = []
    path = f"/v2.1/{real_stack.demo_a}/{collection}?limit=7"
    while True:
        status, _, body = await get_json(client, path, tokens["alice"])
        assert status == 200
        page = [image["id"] for image in body["images"]]
        seen += page
        if "images_links" not in body:
            assert len(page) < 7
            break
        assert len(page) == 7
        assert body["images_links"] == [
            {
                "rel": "next",
                "href": f"{base}/v2.1/{real_stack.demo_a}/{collection}?limit=7&marker={page[-1]}",
            }
        ]
        href = body["images_links"][0]["href"]
        path = href[len(base) :]
    assert seen == listed


async def test_limit_larger_than_a_glance_page_walks_pages(
    client: Client, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    listed = [catalogue.ids[label] for label in catalogue.listed("alice")]
    _, _, body = await get_json(client, "/v2.1/images/detail?limit=25", tokens["alice"])
    assert [image["id"] for image in body["images"]] == listed[:25]
    assert urlsplit(body["images_links"][0]["href"]).query == f"limit=25&marker={listed[24]}"
    # page_size sets the Glance page size; the answer is the same.
    _, _, body = await get_json(client, "/v2.1/images/detail?limit=25&page_size=3", tokens["alice"])
    assert [image["id"] for image in body["images"]] == listed[:25]
    # A limit past the end returns everything and no link.
    _, _, body = await get_json(client, "/v2.1/images?limit=5000", tokens["alice"])
    assert [image["id"] for image in body["images"]] == listed
    assert "images_links" not in body


async def test_final_marker_request_returns_empty_list(
    client: Client, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    """openstacksdk sends one more request with the last id as marker."""
    last = catalogue.listings["alice"][-1]
    status, _, body = await get_json(
        client, f"/v2.1/images/detail?marker={last}&limit=10", tokens["alice"]
    )
    assert (status, body) == (200, {"images": []})


async def test_next_link_rules_with_small_max_limit(
    make_shim: MakeShim, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    """docs/nova.md §4.6: a link iff min(limit, max_limit) equals the count returned
    (contract.md D9 for repeats)."""
    client = await make_shim(max_limit=5)
    base = base_of(client)
    listed = catalogue.listings["alice"]
    _, _, body = await get_json(client, "/v2.1/images?limit=5", tokens["alice"])
    assert [image["id"] for image in body["images"]] == listed[:5]
    href = body["images_links"][0]["href"]
    assert href == f"{base}/v2.1/images?limit=5&marker={listed[4]}"
    _, _, body = await get_json(client, "/v2.1/images?limit=6", tokens["alice"])
    assert len(body["images"]) == 6
    assert "images_links" not in body
    # Repeated filter: the applied (last) value is carried; unknown params are dropped.
    query = "property-os_distro=zzz&limit=5&property-os_distro=cirros&foo=1"
    _, _, body = await get_json(client, f"/v2.1/images?{query}", tokens["alice"])
    assert [image["id"] for image in body["images"]] == [catalogue.ids["cirros-active"]]
    assert "images_links" not in body


async def test_next_link_carries_the_applied_filters(
    client: Client, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    base = base_of(client)
    # Repeated name, an unknown parameter: nothing is left to page through.
    query = "status=ACTIVE&limit=2&name=zzz&foo=1&name=cirros-active"
    _, _, body = await get_json(client, f"/v2.1/images?{query}", tokens["alice"])
    assert [image["id"] for image in body["images"]] == [catalogue.ids["cirros-active"]]
    assert "images_links" not in body
    _, _, body = await get_json(
        client, "/v2.1/images?type=snapshot&limit=1&sort_key=name", tokens["alice"]
    )
    href = body["images_links"][0]["href"]
    assert href.startswith(f"{base}/v2.1/images?")
    assert parse_qsl(urlsplit(href).query, keep_blank_values=True) == [
        ("limit", "1"),
        ("type", "snapshot"),
        ("marker", catalogue.ids["snapshot-of-vm"]),  # appended last when absent (nova.md §4.6)
    ]


def _ids(body: Any) -> set[str]:
    return {image["id"] for image in body["images"]}


async def test_filters_reach_glance(
    client: Client, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    ids = catalogue.ids
    token = tokens["alice"]
    visible = set(catalogue.listings["alice"])

    async def query(q: str) -> set[str]:
        status, _, body = await get_json(client, f"/v2.1/images/detail?{q}", token)
        assert status == 200, body
        return _ids(body)

    assert await query("name=cirros-active") == {ids["cirros-active"]}
    assert await query(
        "name=%C3%9Cn%C3%AFc%C3%B8d%C3%A9+%D0%BE%D0%B1%D1%80%D0%B0%D0%B7+"
        "%E9%95%9C%E5%83%8F+%E2%9C%93"
    ) == {ids["Ünïcødé образ 镜像 ✓"]}
    assert await query("name=nothing-like-this") == set()
    assert await query("minRam=512") == {ids["snapshot-of-vm"]}
    assert await query("minDisk=9") == {ids["status-deactivated"]}
    assert await query("minRam=512&minDisk=2") == {ids["snapshot-of-vm"]}
    assert await query(f"server={INSTANCE_UUID}") == {ids["snapshot-of-vm"]}
    assert await query(f"server=http%3A%2F%2Fnova%2Fv2.1%2Fservers%2F{INSTANCE_UUID}") == {
        ids["snapshot-of-vm"]
    }
    assert await query(f"property-instance_uuid={INSTANCE_UUID}") == {ids["snapshot-of-vm"]}
    assert await query("type=snapshot") == {ids["snapshot-of-vm"]}
    # contract.md D1: exactly the prefix is stripped, so os_distro is not mangled into s_distro.
    assert await query("property-os_distro=cirros") == {ids["cirros-active"]}
    assert await query("property-os_type=linux") == {ids["cirros-active"], ids["snapshot-of-vm"]}
    assert await query("UNSUPPORTED=x&sort_key=name") == visible
    # changes-since: every image is newer than 2000; none newer than 2100 (+ offset encoded).
    assert await query("changes-since=2000-01-01T00:00:00Z") == visible
    assert await query("changes-since=2100-01-01T00:00:00%2B02:00") == set()
    # contract.md D2: a Nova status finds the Glance statuses that display as it.
    statuses = {label: catalogue.image(label)["status"] for label in catalogue.listed("alice")}

    def having(*glance_statuses: str) -> set[str]:
        return {ids[label] for label, s in statuses.items() if s in glance_statuses}

    assert await query("status=ACTIVE") == having("active")
    assert await query("status=SAVING") == having("queued", "saving")
    assert having("queued")
    assert having("saving")
    assert await query("status=UNKNOWN") == having("uploading", "importing", "deactivated")
    assert await query("status=DELETED") == having("deleted", "pending_delete")
    assert await query("status=ERROR") == set()  # Glance never lists killed images
    assert await query("status=queued") == having("queued")
    assert await query("status=bogus") == set()


async def test_repeated_filter_uses_the_last_value(
    client: Client, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    _, _, body = await get_json(
        client, "/v2.1/images?name=status-active&name=cirros-active", tokens["alice"]
    )
    assert _ids(body) == {catalogue.ids["cirros-active"]}


FAULT_JSON = "application/json; charset=UTF-8"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=abc", "Invalid input for query parameters limit. Value: abc. "
         "'abc' does not match '^[0-9]*$'"),
        ("limit=-1", "Invalid input for query parameters limit. Value: -1. "
         "'-1' does not match '^[0-9]*$'"),
        ("limit=0", "Invalid input for query parameters limit. Value: 0. "
         "0 is less than the minimum of 1"),
        ("limit=", "Invalid input for query parameters limit. Value: . '' should be non-empty"),
        ("marker=00000000-0000-0000-0000-000000000000", "HTTP 400 Bad Request: "
         "No image found with ID 00000000-0000-0000-0000-000000000000"),
        ("marker=abc", "HTTP 400 Bad Request: No image found with ID abc"),
        ("changes-since=yesterday", "HTTP 400 Bad Request: Bad &quot;updated_at&quot; query "
         "filter format. Use ISO 8601 DateTime notation."),
        ("name=neq:x", "HTTP 400 Bad Request: Unable to filter by unknown operator &#x27;neq"
         "&#x27;."),
    ],
)  # fmt: skip
async def test_bad_list_queries_get_novas_400(
    client: Client, tokens: dict[str, str], catalogue: Catalogue, query: str, message: str
) -> None:
    status, headers, body = await get_json(
        client, f"/v2.1/images/detail?{query}", tokens["alice"], **VERSION_HEADERS
    )
    assert status == 400
    assert headers["Content-Type"] == FAULT_JSON
    assert headers["OpenStack-API-Version"] == "compute 2.35"
    assert body == {"badRequest": {"code": 400, "message": message}}


async def test_error_paths(
    client: Client, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    token = tokens["alice"]
    missing = "00000000-0000-0000-0000-000000000000"
    not_found = {"itemNotFound": {"code": 404, "message": "Image not found."}}
    for path in (
        f"/v2.1/images/{missing}",
        f"/v2.1/images/{catalogue.ids['private-b']}",
        "/v2.1/images/not-a-uuid",
        f"/v2.1/images/{catalogue.ids['deleted-via-api']}",
    ):
        status, headers, body = await get_json(client, path, token)
        assert (status, body) == (404, not_found), path
        assert headers["Content-Type"] == FAULT_JSON
    invisible = catalogue.ids["private-b"]
    status, _, body = await get_json(client, f"/v2.1/images/detail?marker={invisible}", token)
    assert (status, body) == (
        403,
        {
            "forbidden": {
                "code": 403,
                "message": f"HTTP 403 Forbidden: Forbidding request, image {invisible} not visible",
            }
        },
    )
    # carol is a member without the reader role: Glance refuses her list.
    status, _, body = await get_json(client, "/v2.1/images/detail", tokens["carol"])
    assert (status, body) == (
        403,
        {
            "forbidden": {
                "code": 403,
                "message": "HTTP 403 Forbidden: You are not authorized to complete "
                "get_images action.",
            }
        },
    )


UNAUTHORIZED = {
    "error": {
        "code": 401,
        "title": "Unauthorized",
        "message": "The request you have made requires authentication.",
    }
}


async def test_missing_and_invalid_tokens_get_keystones_401(
    client: Client, real_stack: StackInfo
) -> None:
    for token in (None, "not-a-valid-token"):
        status, headers, body = await get_json(client, "/v2.1/images/detail", token)
        assert (status, body) == (401, UNAUTHORIZED)
        assert headers["Content-Type"] == "application/json"
        assert headers["WWW-Authenticate"] == f'Keystone uri="{real_stack.keystone_url}"'
        assert headers["x-openstack-request-id"].startswith("req-")


async def test_glance_down_is_a_503_with_retry_after(
    make_shim: MakeShim, tokens: dict[str, str]
) -> None:
    from yarl import URL

    client = await make_shim(
        glance_url=URL("http://127.0.0.1:9"), glance_retries=1, glance_timeout=2.0
    )
    status, headers, body = await get_json(client, "/v2.1/images/detail", tokens["alice"])
    assert status == 503
    assert headers["Retry-After"] == "5"
    assert body == {
        "serviceUnavailable": {
            "code": 503,
            "message": "The image service is unavailable. Please retry later.",
        }
    }


@pytest.mark.parametrize(
    ("headers", "status", "body", "echo"),
    [
        ({"OpenStack-API-Version": "compute 2.35"}, 200, None, "2.35"),
        ({"X-OpenStack-Nova-API-Version": "2.20"}, 200, None, "2.20"),
        ({"OpenStack-API-Version": "compute 2.3", "X-OpenStack-Nova-API-Version": "2.30"},
         200, None, "2.3"),
        ({"OpenStack-API-Version": "compute 2.36"}, 404,
         {"itemNotFound": {"code": 404, "message": "The resource could not be found."}}, "2.36"),
        ({"OpenStack-API-Version": "compute latest"}, 404,
         {"itemNotFound": {"code": 404, "message": "The resource could not be found."}},
         "2.104"),
        ({"OpenStack-API-Version": "compute 2.01"}, 400,
         {"badRequest": {"code": 400, "message": "API Version String 2.01 is of invalid format. "
                         "Must be of format MajorNum.MinorNum."}}, None),
        ({"OpenStack-API-Version": "compute 3.0"}, 406,
         {"computeFault": {"code": 406, "message": "Version 3.0 is not supported by the API. "
                           "Minimum is 2.1 and maximum is 2.104."}}, "3.0"),
    ],
)  # fmt: skip
async def test_microversions(
    client: Client,
    tokens: dict[str, str],
    catalogue: Catalogue,
    headers: dict[str, str],
    status: int,
    body: Any,
    echo: str | None,
) -> None:
    image_id = catalogue.ids["cirros-active"]
    code, answer_headers, answer = await get_json(
        client, f"/v2.1/images/{image_id}", tokens["alice"], **headers
    )
    assert code == status
    if body is not None:
        assert answer == body
        assert answer_headers["Content-Type"] == FAULT_JSON
    else:
        assert answer["image"]["id"] == image_id
    if echo is None:
        assert "OpenStack-API-Version" not in answer_headers
        assert "Vary" not in answer_headers
    else:
        assert answer_headers["OpenStack-API-Version"] == f"compute {echo}"
        assert answer_headers["X-OpenStack-Nova-API-Version"] == echo
        assert answer_headers.getall("Vary") == [
            "OpenStack-API-Version",
            "X-OpenStack-Nova-API-Version",
        ]
    # /v2 ignores microversion headers altogether.
    code, answer_headers, answer = await get_json(
        client, f"/v2/images/{image_id}", tokens["alice"], **headers
    )
    assert code == 200
    assert "OpenStack-API-Version" not in answer_headers


async def test_microversion_cap_off_serves_modern_versions(
    make_shim: MakeShim, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    client = await make_shim(microversion_cap="off")
    status, headers, body = await get_json(
        client, "/v2.1/images/detail?limit=1", tokens["alice"],
        **{"OpenStack-API-Version": "compute 2.90"},
    )  # fmt: skip
    assert status == 200
    assert headers["OpenStack-API-Version"] == "compute 2.90"
    assert len(body["images"]) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2.1/demo/images"),  # project id must be [0-9a-f-]+
        ("GET", "/v2.1/images/detail/extra"),
        ("HEAD", "/v2.1/images"),
        ("POST", "/v2.1/images"),
        ("PUT", "/v2.1/images/abc"),
        ("PATCH", "/v2.1/images/abc/metadata"),
        ("GET", "/v2.1/images/abc/metadata/a/b"),
    ],
)
async def test_unroutable_image_paths_get_a_json_404(
    client: Client, tokens: dict[str, str], method: str, path: str
) -> None:
    async with client.request(method, path, headers={"X-Auth-Token": tokens["alice"]}) as response:
        assert response.status == 404
        assert response.headers["Content-Type"] == FAULT_JSON
        if method != "HEAD":
            assert await response.json() == {
                "itemNotFound": {"code": 404, "message": "The resource could not be found."}
            }


async def test_double_slashes_are_merged_not_redirected(
    client: Client, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    status, _, body = await get_json(client, "/v2.1//images?limit=3", tokens["alice"])
    assert status == 200
    assert [image["id"] for image in body["images"]] == catalogue.listings["alice"][:3]
    status, _, body = await get_json(
        client, f"/v2.1//images//{catalogue.ids['cirros-active']}", tokens["alice"]
    )
    assert status == 200


async def test_links_use_public_url_and_trusted_forwarded_headers_only(
    make_shim: MakeShim, real_stack: StackInfo, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    from yarl import URL

    image_id = catalogue.ids["cirros-active"]
    spoof = {"Host": "evil.example", "X-Forwarded-Host": "evil.example",
             "X-Forwarded-Proto": "https"}  # fmt: skip
    client = await make_shim(
        public_url=URL("https://compute.example.com:8774/compute/"),
        glance_public_url=URL("https://image.example.com/v2/"),
    )
    _, _, body = await get_json(client, f"/v2.1/images/{image_id}", tokens["alice"], **spoof)
    assert body["image"]["links"] == expected.links(
        image_id, "https://compute.example.com:8774/compute", "v2.1", None,
        "https://image.example.com",
    )  # fmt: skip
    # Untrusted peer: forwarded headers are ignored (not rejected).
    client = await make_shim()
    _, _, body = await get_json(
        client, f"/v2.1/images/{image_id}", tokens["alice"],
        **{"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
    )  # fmt: skip
    assert body["image"]["links"][0]["href"] == f"{base_of(client)}/v2.1/images/{image_id}"
    # Trusted peer: they count.
    client = await make_shim(trusted_proxies=frozenset({"127.0.0.1"}))
    _, _, body = await get_json(
        client, f"/v2.1/images/{image_id}", tokens["alice"],
        **{"X-Forwarded-Host": "shim.example:443", "X-Forwarded-Proto": "https"},
    )  # fmt: skip
    assert body["image"]["links"][0]["href"] == (f"https://shim.example:443/v2.1/images/{image_id}")


async def test_a_client_preferring_novas_vendor_type_gets_it(
    client: Client, tokens: dict[str, str], catalogue: Catalogue
) -> None:
    vendor = "application/vnd.openstack.compute+json"
    image_id = catalogue.ids["cirros-active"]
    for path in (f"/v2.1/images/{image_id}", "/v2.1/images/detail?limit=2", "/v2.1/images"):
        status, headers, body = await get_json(client, path, tokens["alice"], Accept=vendor)
        assert status == 200
        assert headers["Content-Type"] == vendor
        assert body
    status, headers, _ = await get_json(
        client, f"/v2.1/images/{image_id}", tokens["alice"], Accept="*/*"
    )
    assert headers["Content-Type"] == "application/json"
