"""Metrics: bounded labels, the request/upstream/legacy-caller series, the probes.

Metric objects are process-wide, so traffic tests compare sample values before and after.
(Aggregation across worker processes is tested in ``tests/inprocess/test_process.py``.)
"""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient, AiohttpServer
from yarl import URL

from shim import metrics
from shim.access import classify_upstream, outcome_of, route_of
from shim.legacy.microversion import Version
from shim.runtime import Runtime
from tests.fakes import RecordingUpstream, Reply
from tests.fakes.images import IMAGE_ID, glance_image
from tests.fakes.net import refused_url
from tests.fakes.shim_server import local_settings, served_shim

TOKEN = "tok-metrics-test-token"
PROJECT = "0c1c1d2b3e4f40b6a4b1e1c2d3e4f5a6"
MAX = Version(2, 104)


def sample(name: str, **labels: str) -> float:
    return metrics.get().registry.get_sample_value(name, labels) or 0.0


# --- labels ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("2.1", "2.1"),
        ("2.35", "2.35"),
        ("2.104", "2.104"),
        ("2.105", "invalid"),
        ("3.0", "invalid"),
        ("2.0", "invalid"),
        ("1.1", "invalid"),
        ("2.01", "invalid"),
        ("latest", "invalid"),
        ("2.1; DROP", "invalid"),
        ("2." + "9" * 20, "invalid"),
        (None, "none"),
        ("", "none"),
    ],
)
def test_microversion_label(value: str | None, label: str) -> None:
    assert metrics.microversion_label(value, MAX) == label


def test_method_label_is_bounded() -> None:
    assert metrics.method_label("GET") == "GET"
    assert metrics.method_label("PATCH") == "PATCH"
    assert metrics.method_label("PROPFIND") == "other"
    assert metrics.method_label("get") == "other"


@pytest.mark.parametrize(
    ("method", "path", "passthrough", "route", "legacy"),
    [
        ("GET", "/v2.1/images", False, "/v2.1/images", True),
        ("GET", f"/v2.1/{PROJECT}/images/detail", False, "/v2.1/{project_id}/images/detail", True),
        (
            "GET",
            f"/v2/{PROJECT}/images/{IMAGE_ID}",
            True,
            "/v2/{project_id}/images/{image_id}",
            True,
        ),
        ("DELETE", f"/v2.1/images/{IMAGE_ID}", True, "/v2.1/images/{image_id}", True),
        (
            "PUT",
            f"/v2.1/images/{IMAGE_ID}/metadata",
            False,
            "/v2.1/images/{image_id}/metadata",
            True,
        ),
        (
            "DELETE",
            f"/v2.1//images/{IMAGE_ID}/metadata/k",
            False,
            "/v2.1/images/{image_id}/metadata/{key}",
            True,
        ),
        ("HEAD", "/v2.1/images", False, "legacy_not_found", True),
        ("GET", "/v2.1/demo/images", False, "legacy_not_found", True),
        ("GET", "/v2.1/servers/detail", True, "passthrough", False),
        ("GET", "/", True, "passthrough", False),
        ("GET", "/", False, "discovery", False),
        ("GET", "/v2.1/", False, "discovery", False),
        ("POST", "/v2.1", False, "not_found", False),
        ("GET", "/v2.1/servers", False, "not_found", False),
    ],
)
def test_route_labels_are_templates(
    method: str, path: str, passthrough: bool, route: str, legacy: bool
) -> None:
    assert route_of(method, path, passthrough=passthrough) == (route, legacy)


def test_classify_upstream() -> None:
    nova = URL("http://nova:8774/compute")
    keystone = URL("http://keystone:5000")

    def classify(method: str, url: str) -> tuple[str, str]:
        return classify_upstream(method, URL(url), nova=nova, keystone=keystone)

    assert classify("GET", "http://glance:9292/v2/images?limit=3") == ("glance", "list")
    assert classify("GET", "http://glance:9292/v2/schemas/image") == ("glance", "schema")
    assert classify("GET", f"http://glance:9292/v2/images/{IMAGE_ID}") == ("glance", "show")
    assert classify("PATCH", f"http://glance:9292/v2/images/{IMAGE_ID}") == ("glance", "patch")
    assert classify("DELETE", f"http://glance:9292/v2/images/{IMAGE_ID}") == ("glance", "delete")
    assert classify("GET", "http://keystone:5000/v3/auth/tokens") == ("keystone", "validate")
    assert classify("POST", "http://keystone:5000/v3/auth/tokens") == ("keystone", "issue")
    assert classify("GET", "http://nova:8774/compute/v2.1/servers") == ("nova", "passthrough")
    assert classify("GET", "http://nova:8774/other") == ("glance", "other")


def test_outcome_labels() -> None:
    assert outcome_of(200) == "2xx"
    assert outcome_of(404) == "4xx"
    assert outcome_of(503) == "5xx"
    assert outcome_of(None, TimeoutError()) == "timeout"
    assert outcome_of(None, ConnectionResetError()) == "error"


def test_token_cache_counter() -> None:
    hits, misses = (
        sample("nova_image_shim_token_cache_lookups_total", result="hit"),
        sample("nova_image_shim_token_cache_lookups_total", result="miss"),
    )
    metrics.token_cache(True)
    metrics.token_cache(True)
    metrics.token_cache(False)
    assert sample("nova_image_shim_token_cache_lookups_total", result="hit") == hits + 2
    assert sample("nova_image_shim_token_cache_lookups_total", result="miss") == misses + 1


def test_multiprocess_mode_cannot_be_enabled_once_metrics_exist(tmp_path: object) -> None:
    metrics.get()
    with pytest.raises(RuntimeError, match="before forking"):
        metrics.enable_multiprocess(tmp_path)  # type: ignore[arg-type]


# --- the metrics port ------------------------------------------------------------------------


async def test_probes_follow_runtime_and_never_need_glance(aiohttp_client: AiohttpClient) -> None:
    runtime = Runtime()
    client = await aiohttp_client(metrics.create_metrics_app(runtime))
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 503  # session not open yet
    runtime.session_open = True
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.text() == "ready\n"
    runtime.draining = True
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.text() == "draining\n"
    assert (await client.get("/healthz")).status == 200


async def test_metrics_endpoint_lists_every_family(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(metrics.create_metrics_app(Runtime()))
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(await response.text())}
    assert {
        "nova_image_shim_requests",
        "nova_image_shim_request_duration_seconds",
        "nova_image_shim_requests_in_flight",
        "nova_image_shim_upstream_requests",
        "nova_image_shim_upstream_duration_seconds",
        "nova_image_shim_token_cache_lookups",
        "nova_image_shim_legacy_client_requests",
        "process_cpu_seconds",
    } <= names
    openmetrics = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")


# --- traffic ---------------------------------------------------------------------------------


@pytest.fixture
async def glance_url(aiohttp_server: AiohttpServer) -> URL:
    fake = RecordingUpstream()
    fake.on("/v2/images", Reply.json({"images": [glance_image()]}))
    fake.on(f"/v2/images/{IMAGE_ID}", Reply.json(glance_image()))
    fake.on("/v2/images/missing", Reply.json({"message": "gone"}, status=404))
    server = await aiohttp_server(fake.app)
    return server.make_url("/")


DETAIL = "/v2.1/{project_id}/images/detail"
# series -> how much the traffic below adds to it
EXPECTED_SERIES: list[tuple[str, dict[str, str], int]] = [
    (
        "nova_image_shim_requests_total",
        {"route": DETAIL, "method": "GET", "status": "200", "microversion": "2.20"},
        3,
    ),
    (
        "nova_image_shim_requests_total",
        {
            "route": "/v2/images/{image_id}",
            "method": "GET",
            "status": "404",
            "microversion": "none",
        },
        1,
    ),
    (
        "nova_image_shim_requests_total",
        {"route": "passthrough", "method": "GET", "status": "200", "microversion": "none"},
        1,
    ),
    ("nova_image_shim_request_duration_seconds_count", {"route": DETAIL, "method": "GET"}, 3),
    (
        "nova_image_shim_upstream_requests_total",
        {"upstream": "glance", "operation": "list", "outcome": "2xx"},
        3,
    ),
    (
        "nova_image_shim_upstream_requests_total",
        {"upstream": "glance", "operation": "show", "outcome": "4xx"},
        1,
    ),
    (
        "nova_image_shim_upstream_requests_total",
        {"upstream": "nova", "operation": "passthrough", "outcome": "2xx"},
        1,
    ),
    (
        "nova_image_shim_upstream_duration_seconds_count",
        {"upstream": "glance", "operation": "list"},
        3,
    ),
    ("nova_image_shim_legacy_client_requests_total", {"client": "gophercloud"}, 3),
    ("nova_image_shim_legacy_client_requests_total", {"client": "other"}, 1),
    # passthrough requests are not legacy image calls
    ("nova_image_shim_legacy_client_requests_total", {"client": "curl"}, 0),
]


async def test_traffic_shows_request_upstream_and_legacy_caller_series(
    glance_url: URL, aiohttp_server: AiohttpServer
) -> None:
    nova = await aiohttp_server(RecordingUpstream(default=Reply.json({"servers": []})).app)
    settings = local_settings(glance_url=glance_url, nova_url=nova.make_url("/"))
    before = [sample(name, **labels) for name, labels, _ in EXPECTED_SERIES]
    async with served_shim(settings) as shim, aiohttp.ClientSession() as client:
        for _ in range(3):
            async with client.get(
                shim.url / f"v2.1/{PROJECT}/images/detail",
                headers={
                    "X-Auth-Token": TOKEN,
                    "User-Agent": "gophercloud/v2.4.0",
                    "X-OpenStack-Nova-API-Version": "2.20",
                },
            ) as response:
                assert response.status == 200
        async with client.get(
            shim.url / "v2/images/missing",
            headers={"X-Auth-Token": TOKEN, "User-Agent": "my-app/1.0"},
        ) as response:
            assert response.status == 404
        async with client.get(
            shim.url / "v2.1/servers", headers={"X-Auth-Token": TOKEN, "User-Agent": "curl/8"}
        ) as response:
            assert response.status == 200
        assert sample("nova_image_shim_requests_in_flight") == 0
        async with client.get(shim.metrics_url / "metrics") as response:
            exposition = await response.text()
    for (name, labels, added), old in zip(EXPECTED_SERIES, before, strict=True):
        assert sample(name, **labels) == old + added, (name, labels)
    assert 'nova_image_shim_legacy_client_requests_total{client="gophercloud"}' in exposition
    assert 'route="/v2.1/{project_id}/images/detail"' in exposition


async def test_upstream_failures_are_counted_by_outcome() -> None:
    settings = local_settings(glance_url=refused_url(), glance_retries=0)
    before = sample(
        "nova_image_shim_upstream_requests_total",
        upstream="glance",
        operation="show",
        outcome="connect_error",
    )
    async with (
        served_shim(settings) as shim,
        aiohttp.ClientSession() as client,
        client.get(shim.url / f"v2.1/images/{IMAGE_ID}", headers={"X-Auth-Token": TOKEN}) as r,
    ):
        assert r.status == 503
    after = sample(
        "nova_image_shim_upstream_requests_total",
        upstream="glance",
        operation="show",
        outcome="connect_error",
    )
    assert after == before + 1
