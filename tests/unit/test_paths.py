"""Routing of legacy image paths (docs/nova.md §1, docs/contract.md §1)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shim.legacy.paths import LegacyTarget, merge_slashes
from shim.legacy.table import match_legacy

PID = "6f70656e737461636b20342065766572"
IMG = "70a599e0-31e7-49b7-b260-868f441e862b"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        # the four prefixes (nova.md §1.2)
        ("GET", "/v2/images", LegacyTarget("v2", None, "index")),
        ("GET", "/v2.1/images", LegacyTarget("v2.1", None, "index")),
        ("GET", f"/v2/{PID}/images", LegacyTarget("v2", PID, "index")),
        ("GET", f"/v2.1/{PID}/images", LegacyTarget("v2.1", PID, "index")),
        # the route table (nova.md §1.1)
        ("GET", "/v2.1/images/detail", LegacyTarget("v2.1", None, "detail")),
        ("GET", f"/v2.1/images/{IMG}", LegacyTarget("v2.1", None, "show", IMG)),
        ("DELETE", f"/v2.1/images/{IMG}", LegacyTarget("v2.1", None, "delete", IMG)),
        ("GET", f"/v2.1/images/{IMG}/metadata", LegacyTarget("v2.1", None, "meta_index", IMG)),
        ("POST", f"/v2.1/images/{IMG}/metadata", LegacyTarget("v2.1", None, "meta_create", IMG)),
        (
            "PUT",
            f"/v2.1/images/{IMG}/metadata",
            LegacyTarget("v2.1", None, "meta_update_all", IMG),
        ),
        (
            "GET",
            f"/v2.1/{PID}/images/{IMG}/metadata/k",
            LegacyTarget("v2.1", PID, "meta_show", IMG, "k"),
        ),
        (
            "PUT",
            f"/v2/images/{IMG}/metadata/k",
            LegacyTarget("v2", None, "meta_update", IMG, "k"),
        ),
        (
            "DELETE",
            f"/v2.1/images/{IMG}/metadata/a key.x",
            LegacyTarget("v2.1", None, "meta_delete", IMG, "a key.x"),
        ),
        # only GET is defined on /images/detail: DELETE deletes the image "detail" (nova.md §1.1)
        ("DELETE", "/v2.1/images/detail", LegacyTarget("v2.1", None, "delete", "detail")),
        ("PUT", "/v2.1/images/detail", LegacyTarget("v2.1", None, None)),
        ("GET", "/v2.1/images/detail/metadata", LegacyTarget("v2.1", None, "meta_index", "detail")),
        # "images" is never a project id: the bare route wins, as in Nova
        ("GET", "/v2.1/images/images", LegacyTarget("v2.1", None, "show", "images")),
        (
            "GET",
            "/v2.1/images/images/metadata",
            LegacyTarget("v2.1", None, "meta_index", "images"),
        ),
        ("GET", "/v2.1/images/images/images", LegacyTarget("v2.1", None, None)),
        # project id: [0-9a-f-]+, integers and dashes included
        ("GET", "/v2.1/abc/images", LegacyTarget("v2.1", "abc", "index")),
        ("GET", "/v2.1/12345/images/detail", LegacyTarget("v2.1", "12345", "detail")),
        ("GET", "/v2.1/-/images", LegacyTarget("v2.1", "-", "index")),
        # a segment that is not a project id matches no Nova route: 404 fault
        ("GET", "/v2.1/demo/images", LegacyTarget("v2.1", None, None)),
        ("GET", "/v2.1/ABC/images", LegacyTarget("v2.1", None, None)),
        ("GET", f"/v2/Demo/images/{IMG}", LegacyTarget("v2", None, None)),
        ("GET", "/v2.1/images.json/images", LegacyTarget("v2.1", None, None)),
        # other methods, HEAD included (contract.md §1)
        ("HEAD", "/v2.1/images", LegacyTarget("v2.1", None, None)),
        ("HEAD", f"/v2.1/images/{IMG}", LegacyTarget("v2.1", None, None)),
        ("POST", "/v2.1/images", LegacyTarget("v2.1", None, None)),
        ("PUT", f"/v2.1/images/{IMG}", LegacyTarget("v2.1", None, None)),
        ("OPTIONS", "/v2.1/images/detail", LegacyTarget("v2.1", None, None)),
        ("DELETE", f"/v2.1/images/{IMG}/metadata", LegacyTarget("v2.1", None, None)),
        ("POST", f"/v2.1/images/{IMG}/metadata/k", LegacyTarget("v2.1", None, None)),
        ("get", "/v2.1/images", LegacyTarget("v2.1", None, None)),
        # trailing slashes and sub-paths: Nova's routes are exact
        ("GET", "/v2.1/images/", LegacyTarget("v2.1", None, None)),
        ("DELETE", "/v2.1/images/", LegacyTarget("v2.1", None, None)),
        ("GET", f"/v2.1/{PID}/images/", LegacyTarget("v2.1", PID, None)),
        ("GET", "/v2.1/images/detail/", LegacyTarget("v2.1", None, None)),
        ("GET", f"/v2.1/images/{IMG}/", LegacyTarget("v2.1", None, None)),
        ("GET", f"/v2.1/images/{IMG}/metadata/", LegacyTarget("v2.1", None, None)),
        ("GET", f"/v2.1/images/{IMG}/metadata/k/", LegacyTarget("v2.1", None, None)),
        ("GET", f"/v2.1/images/{IMG}/metadata/k/x", LegacyTarget("v2.1", None, None)),
        ("POST", f"/v2.1/images/{IMG}/action", LegacyTarget("v2.1", None, None)),
        # decoded paths: characters are kept, %2F has become a separator already
        ("GET", "/v2.1/images/a b", LegacyTarget("v2.1", None, "show", "a b")),
        ("GET", "/v2.1/images/x\n", LegacyTarget("v2.1", None, "show", "x\n")),
        ("GET", "/v2.1/images/a/b", LegacyTarget("v2.1", None, None)),
    ],
)
def test_routes(method: str, path: str, expected: LegacyTarget) -> None:
    assert match_legacy(method, path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # fog sends //images; Nova serves /v2.1//images as the list (appendix D)
        ("/v2.1//images", LegacyTarget("v2.1", None, "index")),
        ("//v2.1///images", LegacyTarget("v2.1", None, "index")),
        (f"/v2//{PID}//images//detail", LegacyTarget("v2", PID, "detail")),
        (f"/v2.1/images//{IMG}", LegacyTarget("v2.1", None, "show", IMG)),
        ("/v2.1/images//metadata", LegacyTarget("v2.1", None, "show", "metadata")),
        ("/v2.1/images//", LegacyTarget("v2.1", None, None)),
    ],
)
def test_slashes_are_merged(path: str, expected: LegacyTarget) -> None:
    assert match_legacy("GET", path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/v2",
        "/v2/",
        "/v2.1",
        "/v2.1/",
        "/images",
        "/v3/images",
        "/v2.0/images",
        "/v2.10/images",
        "/V2.1/images",
        "/v2.1/imagesx",
        "/v2.1/images.json",
        "/v2.1/Images",
        "/v2.1/servers",
        "/v2.1/servers/detail",
        f"/v2.1/{PID}/servers",
        "/v2.1/a/b/images",
        "/compute/v2.1/images",
        # a Nova collection followed by a resource named "images" is Nova's
        "/v2.1/servers/images",
        "/v2.1/servers/images/metadata",
        "/v2.1/os-keypairs/images",
        "/v2/flavors/images/os-extra_specs",
        "/v2.1/limits/images",
        "/v2.1/extensions/images",
    ],
)
def test_not_legacy(path: str) -> None:
    assert match_legacy("GET", path) is None
    assert match_legacy("DELETE", path) is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2.1/images", "/v2.1/images"),
        ("//v2.1//images///x", "/v2.1/images/x"),
        ("/", "/"),
        ("", ""),
        ("////", "/"),
    ],
)
def test_merge_slashes(path: str, expected: str) -> None:
    assert merge_slashes(path) == expected


_SEGMENTS = st.sampled_from(
    ["", "v2", "v2.1", "images", "detail", "metadata", "abc", "demo", "os-x", "servers", "k"]
)
_PATHS = st.one_of(
    st.text(),
    st.lists(st.one_of(_SEGMENTS, st.text(max_size=4)), max_size=7).map(
        lambda parts: "/" + "/".join(parts)
    ),
)
_METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get"])


@pytest.mark.hypothesis
@given(method=_METHODS, path=_PATHS)
@example(method="GET", path="/v2.1/images/\x00")
@example(method="GET", path="/v2.1/images\n")
@example(method="DELETE", path="/v2.1//images//")
def test_match_legacy_never_raises(method: str, path: str) -> None:
    target = match_legacy(method, path)
    if target is None:
        return
    assert target.prefix in ("v2", "v2.1")
    merged = merge_slashes(path)
    assert merged.startswith(f"/{target.prefix}/")
    if target.project_id is not None:
        assert target.project_id.strip("0123456789abcdef-") == ""
    if target.action is None:
        assert target.image_id is None
        assert target.key is None
    elif target.action in ("index", "detail"):
        assert target.image_id is None
    else:
        assert target.image_id
        assert "/" not in target.image_id
        assert f"/images/{target.image_id}" in merged
    if target.key is not None:
        assert target.action in ("meta_show", "meta_update", "meta_delete")
        assert merged.endswith(f"/metadata/{target.key}")
