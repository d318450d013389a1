"""`shim.startup.judge`: which service a version document comes from (pure)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from shim.settings import Settings
from shim.startup import Kind, judge, probes
from tests.unit.strategies import json_trees

# Shapes of the documents the real services answer (Glance 33, Keystone 30, Nova 34).
GLANCE_VERSIONS = {
    "versions": [
        {"id": "v2.17", "status": "CURRENT", "links": [{"rel": "self", "href": "http://g/v2/"}]},
        {"id": "v2.16", "status": "SUPPORTED", "links": [{"rel": "self", "href": "http://g/v2/"}]},
    ]
}
KEYSTONE_V3 = {"version": {"id": "v3.14", "status": "stable", "links": []}}
KEYSTONE_ROOT = {"versions": {"values": [{"id": "v3.14", "status": "stable"}]}}
NOVA_ROOT = {
    "versions": [
        {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "", "links": []},
        {"id": "v2.1", "status": "CURRENT", "version": "2.104", "min_version": "2.1"},
    ]
}


@pytest.mark.parametrize(
    ("kind", "doc", "ok", "detail"),
    [
        ("image", GLANCE_VERSIONS, True, "the image service (Glance), versions v2.17"),
        ("identity", KEYSTONE_V3, True, "the identity service (Keystone), version v3.14"),
        ("compute", NOVA_ROOT, True, "the compute API (Nova), versions v2.1"),
        (
            "image",
            NOVA_ROOT,
            False,
            "answered 200 as the compute API (Nova), not the image service (Glance)",
        ),
        (
            "compute",
            GLANCE_VERSIONS,
            False,
            "answered 200 as the image service (Glance), not the compute API (Nova)",
        ),
        (
            "image",
            KEYSTONE_ROOT,
            False,
            "answered 200 as the identity service (Keystone), not the image service (Glance)",
        ),
        (
            "identity",
            {"images": []},
            False,
            "answered 200 with JSON that is not the identity service (Keystone)",
        ),
    ],
)
def test_documents_are_told_apart(kind: Kind, doc: Any, ok: bool, detail: str) -> None:
    assert judge(kind, 200, "application/json", orjson.dumps(doc)) == (ok, detail)


def test_a_page_that_is_not_json_names_its_status_and_type() -> None:
    assert judge("compute", 404, "text/html", b"<html>404 Not Found</html>") == (
        False,
        "answered 404 (text/html), not the compute API (Nova)",
    )


json_values = json_trees(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    keys=st.text(max_size=8),
    width=4,
    max_leaves=20,
)


@given(kind=st.sampled_from(["image", "identity", "compute"]), doc=json_values)
def test_any_json_is_judged_without_raising(kind: Kind, doc: Any) -> None:
    ok, detail = judge(kind, 200, "application/json", orjson.dumps(doc))
    assert detail
    if ok:  # only a document naming versions of the expected kind passes
        assert "version" in orjson.dumps(doc).decode()


@given(body=st.binary(max_size=64))
def test_any_bytes_are_judged_without_raising(body: bytes) -> None:
    judge("image", 500, "", body)


def test_probes_are_the_unauthenticated_version_documents() -> None:
    settings = Settings(
        glance_url=URL("https://glance.example:9292/image/"),
        auth="keystone",
        keystone_url=URL("https://keystone.example/identity"),
        nova_url=URL("http://nova.example:8774"),
    )
    assert [(p.setting, p.kind, str(p.url)) for p in probes(settings)] == [
        ("SHIM_GLANCE_URL", "image", "https://glance.example:9292/image/versions"),
        ("SHIM_KEYSTONE_URL", "identity", "https://keystone.example/identity/v3"),
        ("SHIM_NOVA_URL", "compute", "http://nova.example:8774/"),
    ]
