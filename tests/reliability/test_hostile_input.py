"""Hostile input: what a client sends can never reach another Glance or Nova path, inject a
header, put a foreign host into links, hold a connection open, or overflow a limit without
a Nova fault (docs/contract.md §5).

A `RecordingUpstream` stands in for Glance and Nova where the assertion is about what
reached them; the real Glance checks what it stores (metadata values, scratch images).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient
from yarl import URL

from shim.legacy.metadata_schema import NUL_MESSAGE
from shim.server import start
from shim.settings import Address, Settings
from tests.fakes import RecordedRequest, Reply
from tests.fakes.images import page
from tests.fakes.net import as_written
from tests.reliability.support import IMAGE, IMAGE_ID, ShimOverFakes, capture, token
from tests.shim_fixtures import MakeShim
from tests.stack.fixtures import ScratchImages
from tests.stack.info import StackInfo

TOKEN: Final = token("hostile")
AUTH: Final = {"X-Auth-Token": TOKEN}
NOT_FOUND: Final = {"itemNotFound": {"code": 404, "message": "The resource could not be found."}}
# Every path the shim may ask Glance for: the collection, the schema, or one opaque image
# segment (no "/", no dot segment: dots are sent as %2E).
GLANCE_PATH: Final = re.compile(r"^/v2/(images|schemas/image|images/[^/.]+)$")
DOT_SEGMENT: Final = re.compile(r"(^|/)\.{1,2}(/|$)")


def assert_glance_paths_confined(requests: list[RecordedRequest]) -> None:
    for recorded in requests:
        assert GLANCE_PATH.match(recorded.raw_path), recorded.raw_path
        assert "x-evil" not in recorded.header_names
        assert recorded.header("X-Auth-Token") == TOKEN


TRAVERSALS: Final = [
    "/v2.1/images/..",
    "/v2.1/images/.",
    "/v2.1/images/%2e%2e",
    "/v2.1/images/%2E%2E/metadata",
    "/v2.1/images/..%2f..%2fschemas%2fimage",
    "/v2.1/images/%2e%2e%2f%2e%2e%2fv1%2fimages",
    "/v2.1/images/x%2F..%2F..%2Fimages",
    "/v2.1/images/x/../../v2/images",
    "/v2.1/images/detail/..",
    "/v2.1/images/%2e%2e/metadata/%2e%2e",
    "/v2.1/%2e%2e/images",
    "/v2.1/images/..;/x",
    "/v2.1/images/%252e%252e",
    "/v2.1/images/%c0%ae%c0%ae",
    "/v2.1/images/x%00y",
    "/v2.1/images/x%0D%0AX-Evil:%201",
    "/v2.1/images/x%23frag",
    "/v2.1/images/x%3Fmarker=y",
    "/v2.1/images/x%20HTTP/1.1%0D%0AX-Evil:%201",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_traversal_and_separators_in_ids_stay_inside_one_glance_segment(
    shim_over_fakes: ShimOverFakes, path: str
) -> None:
    client, glance, _ = await shim_over_fakes()
    with capture() as logs:
        for method in ("GET", "DELETE"):
            async with client.session.request(method, as_written(client, path), headers=AUTH) as r:
                body = await r.read()
                assert r.status in (404, 400), (method, path, r.status, body)
                assert r.headers["Content-Type"].startswith("application/json")
    assert_glance_paths_confined(glance.requests)
    assert not logs.unexpected()


@pytest.mark.parametrize(
    "path",
    [
        "/v2.1/servers/../../admin",
        "/v2.1/servers/%2e%2e/%2e%2e/admin",
        "/v2.1/servers/%2E%2E",
        "/v2.1/./servers",
        "/v2.1/servers/x/..",
    ],
)
async def test_passthrough_refuses_dot_segments_before_nova(
    shim_over_fakes: ShimOverFakes, path: str
) -> None:
    client, _, nova = await shim_over_fakes()
    async with client.session.get(as_written(client, path), headers=AUTH) as response:
        assert response.status == 404
        assert await response.json() == NOT_FOUND
    assert nova.requests == []


async def test_passthrough_keeps_encoded_separators_as_sent(shim_over_fakes: ShimOverFakes) -> None:
    client, _, nova = await shim_over_fakes()
    path = "/v2.1/servers/a%2Fb%0D%0AX-Evil:%201?name=x%26limit%3D1&all_tenants=%0D%0A"
    async with client.session.get(as_written(client, path), headers=AUTH) as response:
        assert response.status == 200
    sent = nova.last
    assert sent.raw_path == "/v2.1/servers/a%2Fb%0D%0AX-Evil:%201"
    assert sent.query_string == "name=x%26limit%3D1&all_tenants=%0D%0A"
    assert "x-evil" not in sent.header_names


@pytest.mark.parametrize(
    "marker",
    [
        "m%0D%0AX-Evil:%201",
        "m%26limit%3D1000",
        "m%23frag",
        "m%2F..%2F..%2Fv1",
        "%2e%2e",
        "m%20HTTP/1.1",
    ],
)
async def test_markers_and_filters_stay_single_query_values(
    shim_over_fakes: ShimOverFakes, marker: str
) -> None:
    client, glance, _ = await shim_over_fakes()
    path = f"/v2.1/images/detail?limit=2&marker={marker}&name={marker}"
    async with client.session.get(as_written(client, path), headers=AUTH) as response:
        assert response.status == 200
    sent = [r for r in glance.requests if r.raw_path == "/v2/images"][-1]
    params = parse_qsl(sent.query_string, keep_blank_values=True)
    names = [name for name, _ in params]
    assert sorted(names) == ["limit", "marker", "name"]
    assert dict(params)["marker"] == unquote(marker)
    assert dict(params)["name"] == unquote(marker)
    assert dict(params)["limit"] == "2"
    assert_glance_paths_confined(glance.requests)


async def test_a_nul_in_a_marker_or_filter_is_refused_before_glance(
    shim_over_fakes: ShimOverFakes,
) -> None:
    """contract.md D14: Glance on PostgreSQL answers 500 to a NUL; it is bad input."""
    client, glance, _ = await shim_over_fakes()
    for query in ("limit=2&marker=m%00n", "name=m%00n"):
        async with client.session.get(
            as_written(client, f"/v2.1/images/detail?{query}"), headers=AUTH
        ) as response:
            assert response.status == 400
            assert "badRequest" in await response.json()
    assert not [r for r in glance.requests if r.raw_path == "/v2/images"]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "", {"metadata": {"a\r\nX-Evil: 1": "v"}}),
        ("POST", "", {"metadata": {"k": "v\r\nX-Evil: 1"}}),
        ("PUT", "", {"metadata": {"../../x": "v"}}),
        ("PUT", "/a%0D%0AX-Evil:%201", {"meta": {"a\r\nX-Evil: 1": "v"}}),
        ("PUT", "/a%2Fb", {"meta": {"a/b": "v"}}),
        ("DELETE", "/a%0D%0AX-Evil:%201", None),
        ("GET", "/a%0D%0AX-Evil:%201", None),
        ("GET", "/%2e%2e", None),
    ],
)
async def test_hostile_metadata_keys_never_reach_glance_as_anything_else(
    shim_over_fakes: ShimOverFakes,
    method: str,
    suffix: str,
    body: Any,
) -> None:
    client, glance, _ = await shim_over_fakes()
    glance.on(f"/v2/images/{IMAGE_ID}", Reply.json({**IMAGE, "k": "v"}), method="GET")
    glance.on(f"/v2/images/{IMAGE_ID}", Reply.json({**IMAGE, "k": "v"}), method="PATCH")
    url = as_written(client, f"/v2.1/images/{IMAGE_ID}/metadata{suffix}")
    with capture() as logs:
        async with client.session.request(method, url, json=body, headers=AUTH) as response:
            answer = await response.read()
            assert response.status in (200, 400, 404), answer
    assert_glance_paths_confined(glance.requests)
    for patch in (r for r in glance.requests if r.method == "PATCH"):
        # Whatever the key, it travels inside the JSON-Patch body, never in a URL/header.
        assert patch.raw_path == f"/v2/images/{IMAGE_ID}"
    assert not logs.unexpected()


async def test_oversized_url_headers_and_bodies_get_nova_faults(
    shim_over_fakes: ShimOverFakes,
) -> None:
    client, glance, nova = await shim_over_fakes(
        max_url=2048, max_header_bytes=4096, max_body=64 * 1024
    )
    cases: list[tuple[str, str, dict[str, str], bytes | None, int, str]] = [
        ("GET", "/v2.1/images/detail?name=" + "x" * 3000, {}, None, 414, "computeFault"),
        ("GET", "/v2.1/servers?name=" + "x" * 3000, {}, None, 414, "computeFault"),
        ("GET", "/v2.1/images/" + "x" * 3000, {}, None, 414, "computeFault"),
        ("GET", "/v2.1/images", {"X-Big": "y" * 5000}, None, 431, "computeFault"),
        (
            "GET",
            "/v2.1/images",
            {f"X-Many-{i}": "z" * 100 for i in range(60)},
            None,
            431,
            "computeFault",
        ),
        ("GET", "/v2.1/servers", {"X-Big": "y" * 5000}, None, 431, "computeFault"),
        (
            "POST",
            f"/v2.1/images/{IMAGE_ID}/metadata",
            {"Content-Type": "application/json"},
            b'{"metadata": {"k": "' + b"v" * 100_000 + b'"}}',
            413,
            "overLimit",
        ),
    ]
    for method, path, headers, body, status, name in cases:
        async with client.request(method, path, data=body, headers={**AUTH, **headers}) as r:
            assert r.status == status, (path[:60], await r.read())
            assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
            assert r.headers["x-openstack-request-id"].startswith("req-")
            fault = await r.json()
            assert list(fault) == [name]
            assert fault[name]["code"] == status
    assert glance.requests == []
    assert nova.requests == []

    # A chunked body (no Content-Length) is bounded while it is read.
    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 4096

    async with client.post(
        f"/v2.1/images/{IMAGE_ID}/metadata", data=chunks(), headers=AUTH
    ) as response:
        assert response.status == 413
        assert (await response.json())["overLimit"]["code"] == 413
    # Just under every limit: served.
    async with client.get("/v2.1/images?name=" + "x" * 1900, headers=AUTH) as response:
        assert response.status == 200


async def test_limits_are_settings(aiohttp_client: AiohttpClient) -> None:
    environ = {"SHIM_GLANCE_URL": "http://127.0.0.1:1", "SHIM_MAX_URL": "1024",
               "SHIM_MAX_HEADER_BYTES": "8KiB", "SHIM_MAX_BODY": "1MiB"}  # fmt: skip
    settings = Settings.from_sources(environ)
    assert (settings.max_url, settings.max_header_bytes, settings.max_body) == (
        1024,
        8192,
        1024 * 1024,
    )
    with pytest.raises(ValueError, match="SHIM_MAX_URL"):
        Settings.from_sources({**environ, "SHIM_MAX_URL": "9000"})


async def test_parser_limits_of_the_production_server_answer_nova_faults() -> None:
    """Past aiohttp's own parser limits (the shim's are below them), the production
    runner still answers fault JSON, not aiohttp's plain text (shim.server)."""
    settings = Settings(
        glance_url=URL("http://127.0.0.1:9"),
        listen=Address("127.0.0.1", 0),
        metrics_listen=None,
        workers=1,
    )
    running = await start(settings)
    try:
        base = f"http://127.0.0.1:{running.api_port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/v2.1/images?name={'x' * 9000}") as response:
                assert response.status == 414
                assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
                assert (await response.json())["computeFault"]["code"] == 414
            async with session.get(f"{base}/v2.1/images", headers={"X-Big": "y" * 9000}) as r:
                assert r.status == 431
                assert (await r.json())["computeFault"]["code"] == 431
    finally:
        await running.stop()


SPOOF: Final = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "gopher",
    "X-Forwarded-Prefix": "/evil",
    "Forwarded": 'for=1.2.3.4;host="evil.example";proto=https',
}


def all_hrefs(document: Any, *, own: bool = False) -> list[str]:
    """Every link href in *document*; ``own``: only the shim's (not Glance's alternate)."""
    found: list[str] = []
    if isinstance(document, dict):
        href = document.get("href")
        if isinstance(href, str) and not (own and document.get("rel") == "alternate"):
            found.append(href)
        for value in document.values():
            if isinstance(value, dict | list):
                found += all_hrefs(value, own=own)
    elif isinstance(document, list):
        for item in document:
            found += all_hrefs(item, own=own)
    return found


async def test_spoofed_host_and_forwarded_headers_cannot_change_links(
    shim_over_fakes: ShimOverFakes,
) -> None:
    paged = "/v2.1/images/detail?limit=2"
    server_image = {**IMAGE, "instance_uuid": "0b6ed8c8-6e5b-4e7b-8d5e-d9c7e2f6e0a1"}
    # 1. SHIM_PUBLIC_URL set: nothing the client sends changes self/bookmark/next links.
    client, glance, _ = await shim_over_fakes(public_url=URL("https://compute.example.com/"))
    glance.on("/v2/images", page(0, 2))
    glance.on(f"/v2/images/{IMAGE_ID}", Reply.json(server_image))
    for path in (paged, f"/v2.1/images/{IMAGE_ID}"):
        async with client.get(path, headers={**AUTH, **SPOOF}) as response:
            document = await response.json()
        hrefs, own = all_hrefs(document), all_hrefs(document, own=True)
        assert own
        assert all(h.startswith("https://compute.example.com/") for h in own), hrefs
        assert not any("evil" in h or "gopher" in h for h in hrefs), hrefs

    # 2. No public URL, untrusted peer: forwarded fields are ignored (not rejected).
    client, glance, _ = await shim_over_fakes()
    glance.on("/v2/images", page(0, 2))
    spoof = {k: v for k, v in SPOOF.items() if k != "Host"}
    async with client.get(paged, headers={**AUTH, **spoof}) as response:
        assert response.status == 200
        hrefs = all_hrefs(await response.json())
    own_base = str(client.make_url("")).rstrip("/")
    assert not any("evil" in h or "gopher" in h for h in hrefs), hrefs
    assert any(h.startswith(f"{own_base}/v2.1/") for h in hrefs)

    # 3. A trusted peer's forwarded fields count, but a malformed scheme never does.
    client, glance, _ = await shim_over_fakes(trusted_proxies=frozenset({"127.0.0.1"}))
    glance.on("/v2/images", page(0, 2))
    async with client.get(
        paged, headers={**AUTH, "X-Forwarded-Host": "shim.example", "X-Forwarded-Proto": "gopher"}
    ) as response:
        hrefs = all_hrefs(await response.json())
    assert not any(h.startswith("gopher") for h in hrefs), hrefs
    assert any(h.startswith("http://shim.example/v2.1/") for h in hrefs), hrefs


async def test_slow_loris_is_cut_off_by_the_header_read_bound() -> None:
    settings = Settings(
        glance_url=URL("http://127.0.0.1:9"),
        listen=Address("127.0.0.1", 0),
        metrics_listen=None,
        header_read_timeout=1.0,
        workers=1,
    )
    running = await start(settings)
    loop = asyncio.get_running_loop()
    try:
        port = running.api_port

        async def hold(trickle: bool) -> float:
            """Send a request head that never ends; seconds until the shim hangs up."""
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = loop.time()
            writer.write(b"GET /v2.1/images HTTP/1.1\r\nHost: x\r\n")
            try:
                async with asyncio.timeout(5):
                    for line in range(1000):
                        if trickle:  # one more header line every 0.2 s: always "making progress"
                            writer.write(b"X-Slow-%d: 1\r\n" % line)
                        try:
                            if not await asyncio.wait_for(reader.read(1024), 0.2):
                                break
                        except TimeoutError:
                            continue
                return loop.time() - started
            except ConnectionError:
                return loop.time() - started
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()

        trickled, silent = await asyncio.gather(hold(True), hold(False))
        assert trickled <= 1.0 * 1.5, trickled
        assert silent <= 1.0 * 1.5, silent
        # The server still serves a well-behaved client.
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/v2.1/images") as response,
        ):
            assert response.status == 401  # no token: keystonemiddleware's answer
    finally:
        await running.stop()


@pytest.mark.integration
async def test_metadata_values_round_trip_through_the_real_glance(
    make_shim: MakeShim,
    tokens: dict[str, str],
    real_stack: StackInfo,
    scratch_images: ScratchImages,
) -> None:
    image = await asyncio.to_thread(scratch_images, "alice", name="hostile-metadata")
    client = await make_shim()
    auth = {"X-Auth-Token": tokens["alice"]}
    url = f"/v2.1/images/{image['id']}/metadata"
    accepted = {
        "unicode": "héllo wörld ✓ 日本語 עברית",
        "len255": "v" * 255,
        "k" * 255: "long key",
        "spaces and.dots:colons-dash_": "ok",
        "json_like": '{"a": [1, 2]}',
        "html": "<script>alert(1)</script>&amp;",
        "empty": "",
    }
    with capture() as logs:
        async with client.post(url, json={"metadata": accepted}, headers=auth) as response:
            assert response.status == 200, await response.text()
            echoed = (await response.json())["metadata"]
        for key, value in accepted.items():
            assert echoed[key] == value
        async with client.get(url, headers=auth) as response:
            stored = (await response.json())["metadata"]
        for key, value in accepted.items():
            assert stored[key] == value

        refused: list[tuple[dict[str, Any], str]] = [
            ({"len256": "v" * 256}, "is too long"),
            ({"k" * 256: "v"}, "does not match any of the regexes"),
            ({"number": 1}, "is not of type 'string'"),
            ({"null": None}, "is not of type 'string'"),
            ({"ключ": "v"}, "does not match any of the regexes"),
            # Glance's own refusal, passed through with glanceclient's prefix (docs/contract.md §5).
            ({"emoji": "rocket 🚀"}, "can&#x27;t contain 4 byte unicode characters."),
        ]
        for metadata, reason in refused:
            async with client.post(url, json={"metadata": metadata}, headers=auth) as response:
                assert response.status == 400, metadata
                fault = await response.json()
                assert reason in fault["badRequest"]["message"]
        # A NUL inside a value: Glance on PostgreSQL cannot store one (its 500 would reach
        # the client as a 503 to retry forever), so the shim refuses it (contract.md D14).
        for value in ("a\x00b", "\x00"):
            async with client.put(
                f"{url}/nul", json={"meta": {"nul": value}}, headers=auth
            ) as response:
                assert response.status == 400, await response.text()
                fault = await response.json()
                assert fault["badRequest"]["message"] == NUL_MESSAGE.format(field="meta")
            async with client.get(f"{url}/nul", headers=auth) as item:
                assert item.status == 404  # nothing was written
        # A key ending in a newline slips past "$" in Nova's key pattern (Python's "$"
        # also matches before a final "\n"): it must still be a 200 or a 400, never 5xx.
        async with client.post(url, json={"metadata": {"nl\n": "v"}}, headers=auth) as r:
            assert r.status in (200, 400), await r.text()
    assert not logs.unexpected(), logs.unexpected()
