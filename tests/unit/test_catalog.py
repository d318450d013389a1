"""The token's catalogue: endpoint lookup, version-suffix normalisation, token parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shim.catalog import (
    EndpointCache,
    ImageEndpoints,
    find_endpoint,
    image_endpoints,
    service_root,
)
from shim.keystone import KeystoneAnswerError, parse_token, plausible_token


def endpoint(interface: str, url: str, region: str | None = "RegionOne") -> dict[str, Any]:
    entry: dict[str, Any] = {"id": f"id-{interface}-{region}", "interface": interface, "url": url}
    if region is not None:
        entry["region_id"] = region
        entry["region"] = region
    return entry


CATALOG: list[dict[str, Any]] = [
    {
        "type": "identity",
        "name": "keystone",
        "endpoints": [endpoint("public", "http://ks:5000/v3/")],
    },
    {
        "type": "image",
        "name": "glance",
        "endpoints": [
            endpoint("internal", "http://glance.internal:9292/v2/", "RegionOne"),
            endpoint("public", "https://cloud.example/image/v2/", "RegionOne"),
            endpoint("internal", "http://glance-two.internal:9292", "RegionTwo"),
            endpoint("public", "https://two.example/image", "RegionTwo"),
        ],
    },
]


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("http://h/image/v2/", "http://h/image"),
        ("http://h/image/v2", "http://h/image"),
        ("http://h/image/v2.0/", "http://h/image"),
        ("http://h/image/v2.1", "http://h/image"),
        ("http://h:9292/v2", "http://h:9292"),
        ("http://h:9292/", "http://h:9292"),
        ("http://h:9292", "http://h:9292"),
        ("http://h/image", "http://h/image"),
        ("http://h/image/", "http://h/image"),
        ("http://h//image//v2//", "http://h/image"),
        ("  https://h/image/v2/  ", "https://h/image"),
        ("http://h/v2images", "http://h/v2images"),  # not a version segment
        ("http://h/image/v2/?x=1", "http://h/image"),
    ],
)
def test_service_root_drops_version_and_slashes(url: str, root: str) -> None:
    assert service_root(url) == root
    assert "//" not in service_root(url).split("://", 1)[1]
    assert "//" not in (service_root(url) + "/v2/images").split("://", 1)[1]


def test_find_endpoint_by_interface_and_region() -> None:
    assert find_endpoint(CATALOG, "image", "public") == "https://cloud.example/image/v2/"
    assert find_endpoint(CATALOG, "image", "internal") == "http://glance.internal:9292/v2/"
    assert find_endpoint(CATALOG, "image", "internal", "RegionTwo") == (
        "http://glance-two.internal:9292"
    )
    assert find_endpoint(CATALOG, "image", "public", "RegionTwo") == "https://two.example/image"
    assert find_endpoint(CATALOG, "image", "admin") is None
    assert find_endpoint(CATALOG, "image", "public", "RegionThree") is None
    assert find_endpoint(CATALOG, "compute", "public") is None


def test_find_endpoint_accepts_v2_interface_spelling_and_old_region_key() -> None:
    catalog = [
        {"type": "image", "endpoints": [{"interface": "publicURL", "region": "R", "url": "u"}]}
    ]
    assert find_endpoint(catalog, "image", "public", "R") == "u"
    assert find_endpoint(catalog, "image", "internal", "R") is None


@pytest.mark.parametrize(
    "catalog",
    [
        None,
        {},
        "image",
        [],
        [None, 1, "x"],
        [{"type": "image"}],
        [{"type": "image", "endpoints": "x"}],
        [{"type": "image", "endpoints": [None, {"interface": 1}]}],
        [{"type": "image", "endpoints": [{"interface": "public", "url": 7}]}],
        [{"type": "image", "endpoints": [{"interface": "public", "url": "  "}]}],
        [{"type": "image", "endpoints": [{"interface": "public"}]}],
    ],
)
def test_malformed_catalogues_find_nothing(catalog: object) -> None:
    assert find_endpoint(catalog, "image", "public") is None
    assert image_endpoints(catalog, "public", None) == ImageEndpoints(None, None)


def test_image_endpoints_public_for_links_whatever_the_interface() -> None:
    assert image_endpoints(CATALOG, "internal", "RegionOne") == ImageEndpoints(
        api="http://glance.internal:9292", public="https://cloud.example/image"
    )
    assert image_endpoints(CATALOG, "public", None) == ImageEndpoints(
        api="https://cloud.example/image", public="https://cloud.example/image"
    )
    assert image_endpoints(CATALOG, "admin", None) == ImageEndpoints(
        api=None, public="https://cloud.example/image"
    )


def test_endpoint_cache_builds_once_and_is_bounded() -> None:
    built: list[str] = []

    def factory(root: str) -> str:
        built.append(root)
        return f"client<{root}>"

    cache = EndpointCache(factory, max_size=2)
    assert cache.get("a") == "client<a>"
    assert cache.get("a") == "client<a>"
    cache.get("b")
    cache.get("a")  # a is now the most recent
    cache.get("c")  # evicts b
    assert len(cache) == 2
    cache.get("a")
    cache.get("b")
    assert built == ["a", "b", "c", "b"]


NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def token_doc(**overrides: Any) -> dict[str, Any]:
    token: dict[str, Any] = {
        "methods": ["password"],
        "user": {"id": "u1", "name": "alice", "domain": {"id": "default"}},
        "project": {"id": "p1", "name": "demo-a", "domain": {"id": "default"}},
        "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}],
        "expires_at": "2030-01-01T13:00:00.000000Z",
        "catalog": CATALOG,
    }
    token.update(overrides)
    return {"token": token}


def test_parse_token_reads_identity_lifetime_and_glance() -> None:
    verdict = parse_token(token_doc(), "internal", "RegionTwo", NOW)
    info = verdict.value
    assert info is not None
    assert (info.project_id, info.user_id, info.roles) == ("p1", "u1", ("member", "reader"))
    assert info.expires_at == NOW + timedelta(hours=1)
    assert verdict.lifetime == 3600.0
    assert info.image == ImageEndpoints(
        api="http://glance-two.internal:9292", public="https://two.example/image"
    )


def test_parse_token_without_project_or_catalogue() -> None:
    doc = token_doc(project=None, roles="junk", expires_at="2030-01-01T11:00:00")
    doc["token"].pop("catalog")
    verdict = parse_token(doc, "public", None, NOW)
    assert verdict.value is not None
    assert verdict.value.project_id is None
    assert verdict.value.roles == ()
    assert verdict.value.image == ImageEndpoints(None, None)
    assert verdict.lifetime == -3600.0  # naive stamps are UTC; already expired


@pytest.mark.parametrize(
    "doc",
    [None, [], {}, {"token": None}, token_doc(expires_at=None), token_doc(expires_at="soon")],
)
def test_parse_token_rejects_non_token_documents(doc: Any) -> None:
    with pytest.raises(KeystoneAnswerError):
        parse_token(doc, "public", None, NOW)


@pytest.mark.parametrize(
    ("token", "plausible"),
    [
        ("gAAAAABk-fernet_token-0123456789", True),
        ("x" * 4096, True),
        ("x" * 4097, False),
        ("tökén", False),
        ("with space", True),
        ("tab\there", False),
        ("", True),
    ],
)
def test_plausible_token(token: str, plausible: bool) -> None:
    assert plausible_token(token) is plausible
