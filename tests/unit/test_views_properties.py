"""Properties of the view translators (Hypothesis)."""

from __future__ import annotations

import datetime
import json
from typing import Any, get_args

import iso8601
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shim.faults import BadUpstreamResponse
from shim.legacy.types import GlanceStatus, NovaStatus
from shim.legacy.views import (
    ALWAYS_HIDDEN,
    FALLBACK_SCHEMA,
    glance_base_url,
    isotime,
    link_context,
    to_nova_image,
    to_nova_image_basic,
)
from tests.unit.strategies import json_trees

pytestmark = pytest.mark.hypothesis

NOVA_STATUSES = set(get_args(NovaStatus))
GLANCE_STATUSES = list(get_args(GlanceStatus))
LINKS = link_context("http://shim:8774", "v2.1", "abc", "http://glance:9292")

_JSON = json_trees(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    keys=st.text(),
    width=3,
    max_leaves=10,
)
_TIMES = st.datetimes(
    min_value=datetime.datetime(1000, 1, 1),
    timezones=st.just(datetime.UTC),
).map(
    lambda moment: (
        moment.strftime("%Y-%m-%dT%H:%M:%S")
        + ("Z" if moment.microsecond % 2 else f".{moment.microsecond:06d}Z")
    )
)
_PROPERTY_NAMES = st.one_of(
    st.sampled_from(
        [
            "instance_uuid",
            "auto_disk_config",
            "block_device_mapping",
            "mappings",
            "os_distro",
            "owner",
            "tags",
        ]
    ),
    st.text(max_size=10),
)
_PROPERTY_VALUES = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.sampled_from(["True", "false", " yes ", "[{", "NaN", "[1e400]", '[{"a": 1}]']),
    _JSON.map(json.dumps),
)


@st.composite
def glance_images(draw: st.DrawFn) -> dict[str, Any]:
    image: dict[str, Any] = dict(
        draw(st.dictionaries(_PROPERTY_NAMES, _PROPERTY_VALUES, max_size=6))
    )
    image.update(
        {
            "id": draw(st.one_of(st.uuids().map(str), st.text(max_size=40))),
            "name": draw(st.one_of(st.none(), st.text(max_size=30))),
            "status": draw(st.one_of(st.sampled_from(GLANCE_STATUSES), st.text(max_size=8))),
            "size": draw(st.one_of(st.none(), st.integers(0, 2**62))),
            "min_ram": draw(st.one_of(st.none(), st.integers(0, 2**31))),
            "min_disk": draw(st.one_of(st.none(), st.integers(0, 2**31))),
            "created_at": draw(_TIMES),
            "updated_at": draw(st.one_of(st.none(), _TIMES)),
            "visibility": draw(st.sampled_from(["public", "private", "shared", "community"])),
            "tags": draw(st.lists(st.text(max_size=5), max_size=3)),
        }
    )
    return image


@given(image=glance_images())
@example(
    image={
        "id": "x",
        "name": None,
        "status": "active",
        "size": None,
        "created_at": "2024-01-02T03:04:05Z",
        "block_device_mapping": "[" * 300 + "]" * 300,
        "mappings": "[18446744073709551616]",
    }
)
def test_to_nova_image_keeps_identity_and_serialises(image: dict[str, Any]) -> None:
    view = to_nova_image(image, LINKS, FALLBACK_SCHEMA)
    assert view["id"] == image["id"]
    assert view["name"] == image["name"]
    assert view["status"] in NOVA_STATUSES
    assert view["progress"] in (0, 25, 50, 100)
    assert isinstance(view["minRam"], int)
    assert isinstance(view["minDisk"], int)
    assert isinstance(view["OS-EXT-IMG-SIZE:size"], int)
    assert ALWAYS_HIDDEN.isdisjoint(view["metadata"])
    assert [link["rel"] for link in view["links"]] == ["self", "bookmark", "alternate"]
    assert all(link["href"].endswith("/images/" + image["id"]) for link in view["links"])
    assert ("server" in view) == (view["metadata"].get("instance_uuid") is not None)
    assert view.get("OS-DCF:diskConfig", "AUTO") in ("AUTO", "MANUAL")
    body = orjson.dumps({"images": [view]})
    assert orjson.loads(body)["images"][0]["id"] == image["id"]
    basic = to_nova_image_basic(image, LINKS)
    assert (basic["id"], basic["name"], basic["links"]) == (view["id"], view["name"], view["links"])


@given(image=st.dictionaries(st.text(max_size=8), _JSON, max_size=8))
@example(image={"id": 1})
@example(image={"id": "x", "created_at": "2024-01-02T03:04:05"})
def test_any_glance_json_renders_or_is_a_502(image: dict[str, Any]) -> None:
    try:
        view = to_nova_image(image, LINKS, FALLBACK_SCHEMA)
    except BadUpstreamResponse as fault:
        status = fault.status
    else:
        status = 200
        assert view["status"] in NOVA_STATUSES
        orjson.dumps(view)
    assert status in (200, 502)


def _nova_isotime(value: str) -> str:
    """Nova's utils.isotime(oslo timeutils.parse_isotime(value)), with the real iso8601."""
    at = iso8601.parse_date(value)
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    tz = at.tzinfo.tzname(None) if at.tzinfo else "UTC"
    return text + ("Z" if tz in ("UTC", "UTC+00:00") else str(tz))


_OFFSETS = st.one_of(
    st.just(""),
    st.just("Z"),
    st.builds(
        lambda sign, hours, minutes, colon, short: (
            f"{sign}{hours:02d}" + ("" if short else f"{colon}{minutes:02d}")
        ),
        st.sampled_from("+-"),
        st.integers(0, 23),
        st.integers(0, 59),
        st.sampled_from(["", ":"]),
        st.booleans(),
    ),
)


@given(
    moment=st.datetimes(min_value=datetime.datetime(1000, 1, 1)),
    separator=st.sampled_from("T "),
    fraction=st.one_of(st.just(""), st.from_regex(r"[.,][0-9]{1,9}", fullmatch=True)),
    offset=_OFFSETS,
)
@example(moment=datetime.datetime(2024, 1, 2, 3, 4, 5), separator="T", fraction="", offset="+00:00")
@example(
    moment=datetime.datetime(2024, 1, 2, 3, 4, 5), separator="T", fraction=".5", offset="-0000"
)
def test_isotime_matches_nova_and_iso8601(
    moment: datetime.datetime, separator: str, fraction: str, offset: str
) -> None:
    value = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S") + fraction + offset
    assert isotime(value) == _nova_isotime(value)


@given(value=st.text(max_size=30))
@example(value="2024-02-30T00:00:00Z")
def test_isotime_returns_or_raises_value_error(value: str) -> None:
    try:
        result = isotime(value)
    except ValueError:
        return
    assert result is None or result == _nova_isotime(value)


_URLS = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}{path}",
    st.sampled_from(["http", "https"]),
    st.sampled_from(["h", "h:9292", "v2", "[::1]:80"]),
    st.lists(st.sampled_from(["", "v2", "v2.1", "image", "v10", "x"]), max_size=4).map(
        lambda parts: "".join("/" + part for part in parts)
    ),
)


@given(url=_URLS)
@example(url="http://h/image/v2/")
@example(url="http://v2")
def test_glance_base_url_never_yields_double_slashes(url: str) -> None:
    base = glance_base_url(url)
    path = base.partition("://")[2]
    assert "//" not in path
    assert not base.endswith("/")
    assert base.startswith(url.partition("://")[0] + "://" + url.partition("://")[2].split("/")[0])


@given(
    public=_URLS,
    prefix=st.sampled_from(["v2", "v2.1"]),
    pid=st.one_of(st.none(), st.from_regex(r"[0-9a-f-]{1,32}", fullmatch=True)),
)
def test_link_context_mirrors_the_request(public: str, prefix: str, pid: str | None) -> None:
    links = link_context(public, prefix, pid, "http://g")
    assert "//" not in links.self_base.partition("://")[2]
    assert links.self_base.endswith(f"/{prefix}/{pid}" if pid else f"/{prefix}")
    assert links.bookmark_base.endswith(f"/{pid}" if pid else "")
    assert links.image_self.startswith(links.self_base)
