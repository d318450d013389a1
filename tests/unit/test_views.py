"""Glance image -> Nova image view (docs/nova.md §4, §5, §9, §11; docs/contract.md D3, D8, D12)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shim.faults import BadUpstreamResponse
from shim.legacy.views import (
    FALLBACK_SCHEMA,
    ImageSchema,
    LinkContext,
    glance_base_url,
    isotime,
    link_context,
    schema_from_glance,
    to_nova_image,
    to_nova_image_basic,
    to_nova_metadata,
)
from tests.integration import expected

IMG = "70a599e0-31e7-49b7-b260-868f441e862b"
SERVER = "b31c3e2a-25b4-4a2b-8c06-2c2f1fa2f1a4"
PID = "6f70656e737461636b20342065766572"
LOCAL = link_context("http://localhost", "v2.1", None, "http://glance:9292")

# A Glance 33 image record, as GET /v2/images/{id} returns it (custom properties inline).
GLANCE_IMAGE: dict[str, Any] = {
    "id": IMG,
    "name": "fakeimage7",
    "status": "active",
    "visibility": "shared",
    "protected": False,
    "os_hidden": False,
    "checksum": "c2e5db72bd7fd153f53ede5da5a06de3",
    "os_hash_algo": "sha512",
    "os_hash_value": "abc",
    "owner": PID,
    "size": 25165824,
    "virtual_size": None,
    "min_ram": 0,
    "min_disk": 0,
    "container_format": "bare",
    "disk_format": "qcow2",
    "created_at": "2011-01-01T01:02:03Z",
    "updated_at": "2011-01-01T01:02:03Z",
    "tags": [],
    "self": f"/v2/images/{IMG}",
    "file": f"/v2/images/{IMG}/file",
    "schema": "/v2/schemas/image",
    "stores": "file",
    "architecture": "x86_64",
    "auto_disk_config": "True",
    "kernel_id": "nokernel",
    "ramdisk_id": "nokernel",
}

# The fields tempest's common_image_schema allows (additionalProperties: false, nova.md §10.1).
TEMPEST_FIELDS = {
    "id",
    "status",
    "updated",
    "links",
    "name",
    "created",
    "minDisk",
    "minRam",
    "progress",
    "metadata",
    "server",
    "OS-EXT-IMG-SIZE:size",
    "OS-DCF:diskConfig",
}


def test_detailed_image_of_the_api_sample() -> None:
    links = link_context(
        "http://openstack.example.com", "v2", PID, "http://glance.openstack.example.com"
    )
    view = to_nova_image(GLANCE_IMAGE, links, FALLBACK_SCHEMA)
    assert view == {
        "id": IMG,
        "name": "fakeimage7",
        "minRam": 0,
        "minDisk": 0,
        "metadata": {
            "architecture": "x86_64",
            "auto_disk_config": "True",
            "kernel_id": "nokernel",
            "ramdisk_id": "nokernel",
        },
        "created": "2011-01-01T01:02:03Z",
        "updated": "2011-01-01T01:02:03Z",
        "status": "ACTIVE",
        "progress": 100,
        "OS-EXT-IMG-SIZE:size": 25165824,
        "links": expected.links(
            IMG, "http://openstack.example.com", "v2", PID, "http://glance.openstack.example.com"
        ),
        "OS-DCF:diskConfig": "AUTO",
    }
    # Nova's key order (nova.md §4.1), including the two optional keys at the end
    snapshot = to_nova_image({**GLANCE_IMAGE, "instance_uuid": SERVER}, links, FALLBACK_SCHEMA)
    assert list(snapshot) == [
        "id",
        "name",
        "minRam",
        "minDisk",
        "metadata",
        "created",
        "updated",
        "status",
        "progress",
        "OS-EXT-IMG-SIZE:size",
        "links",
        "server",
        "OS-DCF:diskConfig",
    ]
    assert set(snapshot) <= TEMPEST_FIELDS
    assert [list(link) for link in view["links"]] == [
        ["rel", "href"],
        ["rel", "href"],
        ["rel", "type", "href"],
    ]


def test_unnamed_image_with_nothing_optional() -> None:
    # Nova unit test: name null, metadata {}, minRam/minDisk from strings (nova.md §11)
    image = {"id": IMG, "name": None, "status": "queued", "size": None, "min_ram": "128"}
    view = to_nova_image(image, LOCAL, FALLBACK_SCHEMA)
    assert view == {
        "id": IMG,
        "name": None,
        "minRam": 128,
        "minDisk": 0,
        "metadata": {},
        "created": None,
        "updated": None,
        "status": "SAVING",
        "progress": 25,
        "OS-EXT-IMG-SIZE:size": 0,
        "links": view["links"],
    }


@pytest.mark.parametrize(
    ("glance", "status", "progress"),
    [
        *((glance, *view) for glance, view in expected.STATUS.items()),  # nova.md §4.2
        # any other value, the statuses Glance added later included
        *(
            (glance, "UNKNOWN", 0)
            for glance in ("uploading", "importing", "deactivated", "ACTIVE", "", None)
        ),
    ],
)
def test_status_and_progress(glance: str | None, status: str, progress: int) -> None:
    view = to_nova_image({"id": IMG, "status": glance}, LOCAL, FALLBACK_SCHEMA)
    assert (view["status"], view["progress"]) == (status, progress)


def test_missing_status_is_unknown() -> None:
    view = to_nova_image({"id": IMG}, LOCAL, FALLBACK_SCHEMA)
    assert (view["status"], view["progress"]) == ("UNKNOWN", 0)


@pytest.mark.parametrize(
    ("size", "expected"), [(None, 0), (0, 0), (13287936, 13287936), (2**40, 2**40)]
)
def test_size(size: int | None, expected: int) -> None:
    view = to_nova_image({"id": IMG, "size": size}, LOCAL, FALLBACK_SCHEMA)
    assert view["OS-EXT-IMG-SIZE:size"] == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 0), (0, 0), (512, 512), ("128", 128), ("", 0)]
)
def test_min_ram_and_min_disk(value: object, expected: int) -> None:
    view = to_nova_image({"id": IMG, "min_ram": value, "min_disk": value}, LOCAL, FALLBACK_SCHEMA)
    assert (view["minRam"], view["minDisk"]) == (expected, expected)


def test_server_reference_for_snapshots() -> None:
    # nova.md §4.4 expected links, request without project id
    view = to_nova_image({"id": IMG, "instance_uuid": SERVER}, LOCAL, FALLBACK_SCHEMA)
    assert view["server"] == {
        "id": SERVER,
        "links": [
            {"rel": "self", "href": f"http://localhost/v2.1/servers/{SERVER}"},
            {"rel": "bookmark", "href": f"http://localhost/servers/{SERVER}"},
        ],
    }
    assert view["metadata"] == {"instance_uuid": SERVER}
    # an empty string still produces it; null does not
    assert to_nova_image({"id": IMG, "instance_uuid": ""}, LOCAL, FALLBACK_SCHEMA)["server"] == {
        "id": "",
        "links": [
            {"rel": "self", "href": "http://localhost/v2.1/servers/"},
            {"rel": "bookmark", "href": "http://localhost/servers/"},
        ],
    }
    assert "server" not in to_nova_image({"id": IMG, "instance_uuid": None}, LOCAL, FALLBACK_SCHEMA)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("True", "AUTO"),
        ("true", "AUTO"),
        (" YES ", "AUTO"),
        ("1", "AUTO"),
        ("t", "AUTO"),
        ("on", "AUTO"),
        ("y", "AUTO"),
        (True, "AUTO"),
        ("False", "MANUAL"),
        ("disabled", "MANUAL"),
        ("garbage", "MANUAL"),
        ("", "MANUAL"),
        (False, "MANUAL"),
        (None, None),
    ],
)
def test_disk_config(value: object, expected: str | None) -> None:
    view = to_nova_image({"id": IMG, "auto_disk_config": value}, LOCAL, FALLBACK_SCHEMA)
    assert view.get("OS-DCF:diskConfig") == expected
    assert "OS-DCF:diskConfig" not in to_nova_image({"id": IMG}, LOCAL, FALLBACK_SCHEMA)


def test_basic_item() -> None:
    assert to_nova_image_basic({**GLANCE_IMAGE, "name": None}, LOCAL) == {
        "id": IMG,
        "name": None,
        "links": expected.links(IMG, "http://localhost", "v2.1", None, "http://glance:9292"),
    }
    assert list(to_nova_image_basic(GLANCE_IMAGE, LOCAL)) == ["id", "name", "links"]


@pytest.mark.parametrize(
    "image",
    [
        {"name": "no id"},
        {"id": 5},
        {"id": None},
        {"id": IMG, "min_ram": "abc"},
        {"id": IMG, "min_disk": [1]},
        {"id": IMG, "created_at": "yesterday"},
        {"id": IMG, "updated_at": 5},
        {"id": IMG, "status": ["active"]},
    ],
)
def test_malformed_glance_record_is_502(image: dict[str, Any]) -> None:
    with pytest.raises(BadUpstreamResponse) as caught:
        to_nova_image(image, LOCAL, FALLBACK_SCHEMA)
    assert caught.value.status == 502
    assert caught.value.message == "Invalid response from the image service"


@pytest.mark.parametrize("image", [{"name": "no id"}, {"id": 5}])
def test_malformed_basic_item_is_502(image: dict[str, Any]) -> None:
    with pytest.raises(BadUpstreamResponse):
        to_nova_image_basic(image, LOCAL)


# --- metadata (nova.md §5, contract.md D3)


def test_metadata_hides_base_and_dropped_attributes() -> None:
    metadata = to_nova_metadata(GLANCE_IMAGE, FALLBACK_SCHEMA)
    assert metadata == {
        "architecture": "x86_64",
        "auto_disk_config": "True",
        "kernel_id": "nokernel",
        "ramdisk_id": "nokernel",
    }


def test_metadata_keeps_custom_and_non_base_schema_properties() -> None:
    # tempest: a Glance-v2 image with two custom properties lists exactly those two
    image = {**GLANCE_IMAGE, "os_version": "value1", "os_distro": "value2"}
    image = {
        key: value
        for key, value in image.items()
        if key not in ("architecture", "auto_disk_config", "kernel_id", "ramdisk_id")
    }
    assert to_nova_metadata(image, FALLBACK_SCHEMA) == {
        "os_version": "value1",
        "os_distro": "value2",
    }


def test_metadata_values_pass_through() -> None:
    image = {"id": IMG, "ramdisk_id": None, "user_id": "u", "hw_ephemeral_encryption": "True"}
    assert to_nova_metadata(image, FALLBACK_SCHEMA) == {
        "ramdisk_id": None,
        "user_id": "u",
        "hw_ephemeral_encryption": "True",
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            '[{"boot_index": 0, "source_type": "snapshot"}]',
            [{"boot_index": 0, "source_type": "snapshot"}],
        ),
        ("{}", {}),
        ("null", None),
        ("5", 5),
        ('"x"', "x"),
        # contract.md D3: invalid JSON stays the raw string instead of a 500
        ("[{", "[{"),
        ("", ""),
        ("not json", "not json"),
        # JSON that cannot be written back stays raw too
        ("NaN", "NaN"),
        ("[Infinity]", "[Infinity]"),
        ("1e400", "1e400"),
        ("[" + "1" * 30 + "]", "[" + "1" * 30 + "]"),
        ("[" * 100 + "]" * 100, "[" * 100 + "]" * 100),
        ("[" * 100000, "[" * 100000),
    ],
)
def test_json_properties(raw: str, expected: object) -> None:
    image = {"id": IMG, "block_device_mapping": raw, "mappings": raw}
    metadata = to_nova_metadata(image, FALLBACK_SCHEMA)
    assert metadata == {"block_device_mapping": expected, "mappings": expected}
    orjson.dumps({"images": [{"metadata": metadata}]})


def test_json_properties_that_are_not_strings_pass_through() -> None:
    image = {"id": IMG, "block_device_mapping": None, "mappings": [1]}
    assert to_nova_metadata(image, FALLBACK_SCHEMA) == {
        "block_device_mapping": None,
        "mappings": [1],
    }


def test_schema_from_glance() -> None:
    doc = {
        "name": "image",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": ["null", "string"]},
            "owner": {"type": ["null", "string"]},
            "checksum": {"type": ["null", "string"], "readOnly": True},
            "os_distro": {"type": "string", "is_base": False},
            "instance_uuid": {"type": "string", "is_base": False},
            "description": {"type": "string", "is_base": False},
            "weird": {"is_base": True},
        },
        "additionalProperties": {"type": "string"},
        "links": [],
    }
    schema = schema_from_glance(doc)
    assert {"id", "name", "owner", "checksum", "weird"} <= schema.base
    assert {"os_distro", "instance_uuid", "description"}.isdisjoint(schema.base)
    # always hidden, even when the schema does not list them
    assert {
        "self",
        "file",
        "tags",
        "locations",
        "direct_url",
        "visibility",
        "virtual_size",
    } <= schema.base
    image = {"id": IMG, "owner": "p", "os_distro": "ubuntu", "description": "d", "weird": "w"}
    assert to_nova_metadata(image, schema) == {"os_distro": "ubuntu", "description": "d"}


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"properties": []},
        {"properties": {}},
        {"properties": {"a": "string"}},
        {"properties": None},
    ],
)
def test_schema_from_glance_refuses_non_schemas(doc: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="schema"):
        schema_from_glance(doc)


def test_fallback_schema_is_glance_33_base_properties() -> None:
    assert FALLBACK_SCHEMA.base >= {
        "id", "name", "status", "size", "min_ram", "min_disk", "created_at", "updated_at",
        "visibility", "protected", "os_hidden", "checksum", "os_hash_algo", "os_hash_value",
        "owner", "virtual_size", "container_format", "disk_format", "tags", "direct_url",
        "locations", "self", "file", "schema", "stores",
    }  # fmt: skip
    assert "os_distro" not in FALLBACK_SCHEMA.base
    assert "instance_uuid" not in FALLBACK_SCHEMA.base
    assert ImageSchema(frozenset()).base == frozenset()


# --- dates (nova.md §4.1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05.123456Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05.1234567Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05,5Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05", "2024-01-02T03:04:05Z"),
        ("2024-01-02 03:04:05", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05+01:00", "2024-01-02T03:04:05+01:00"),
        ("2024-01-02T03:04:05+0100", "2024-01-02T03:04:05+01:00"),
        ("2024-01-02T03:04:05+01", "2024-01-02T03:04:05+01:00"),
        ("2024-01-02T03:04:05.9-05:30", "2024-01-02T03:04:05-05:30"),
        ("2024-01-02T03:04:05+00:00", "2024-01-02T03:04:05+00:00"),
        ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z"),
        (None, None),
        ("", None),
    ],
)
def test_isotime(value: str | None, expected: str | None) -> None:
    assert isotime(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2024-01-02",
        "2024-01-02T03:04Z",
        "2024-13-02T03:04:05Z",
        "2023-02-29T03:04:05Z",
        "2024-01-02T24:00:00Z",
        "2024-01-02T03:60:05Z",
        "2024-01-02T03:04:60Z",
        "0000-01-02T03:04:05Z",
        "2024-01-02T03:04:05+24:00",
        "2024-01-02T03:04:05z",
        " 2024-01-02T03:04:05Z",
        "2024-01-02T03:04:05Z\n",
    ],
)
def test_isotime_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        isotime(value)


# --- links (nova.md §4.3, §11, contract.md D8, D12)


def test_compute_and_glance_link_prefixes_of_nova_tests() -> None:
    # test_get_image_with_custom_prefix: zoo.com / circus.com
    links = link_context(
        "https://zoo.com:42", "v2.1", None, glance_base_url("http://circus.com:34")
    )
    view = to_nova_image_basic({"id": IMG}, links)
    assert [link["href"] for link in view["links"]] == [
        f"https://zoo.com:42/v2.1/images/{IMG}",
        f"https://zoo.com:42/images/{IMG}",
        f"http://circus.com:34/images/{IMG}",
    ]


@pytest.mark.parametrize(
    ("public", "prefix", "pid", "self_base", "bookmark_base"),
    [
        ("http://localhost", "v2.1", None, "http://localhost/v2.1", "http://localhost"),
        ("http://h:8774", "v2", PID, f"http://h:8774/v2/{PID}", f"http://h:8774/{PID}"),
        ("http://h:8774/", "v2.1", "", "http://h:8774/v2.1", "http://h:8774"),
        # path-mounted (LinkPrefixTest: http://127.0.0.1/compute)
        (
            "http://127.0.0.1/compute/",
            "v2.1",
            None,
            "http://127.0.0.1/compute/v2.1",
            "http://127.0.0.1/compute",
        ),
        (
            "https://h//compute//",
            "v2.1",
            "abc",
            "https://h/compute/v2.1/abc",
            "https://h/compute/abc",
        ),
        ("https://h/x?q=1#f", "v2.1", None, "https://h/x/v2.1", "https://h/x"),
    ],
)
def test_link_context(
    public: str, prefix: str, pid: str | None, self_base: str, bookmark_base: str
) -> None:
    links = link_context(public, prefix, pid, "http://g/")
    assert links == LinkContext(self_base, bookmark_base, "http://g")
    assert links.image_self == self_base + "/images/"
    assert links.server_bookmark == bookmark_base + "/servers/"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # TestGlanceApiServers stripping table (then no trailing slash, contract.md D8)
        ("http://h/image/v2/", "http://h/image"),
        ("http://h/v2", "http://h"),
        ("http://h/image", "http://h/image"),
        ("http://h/v2.1/", "http://h"),
        ("http://h/", "http://h"),
        ("http://h", "http://h"),
        ("http://glance:9292/v2", "http://glance:9292"),
        ("https://h/image//v2//", "https://h/image"),
        ("http://h/v2/images", "http://h/v2/images"),
        ("http://h/image/v2x", "http://h/image/v2x"),
        ("http://v2", "http://v2"),
    ],
)
def test_glance_base_url(url: str, expected: str) -> None:
    assert glance_base_url(url) == expected
    alternate = link_context("http://n", "v2.1", None, glance_base_url(url)).image_alternate
    assert "//" not in alternate.partition("://")[2]
