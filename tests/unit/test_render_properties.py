"""The C renderer writes exactly what views.py defines, or steps aside.

`shim.legacy._render` may answer ``None`` for any page ("not on my road"); whenever it
answers bytes, they must equal ``orjson.dumps`` of the views.py views, and views.py must
not have raised for that page. On the common road (Glance's own record shapes) it must
not step aside, or it would buy nothing.
"""

from __future__ import annotations

import json
import os
import random
import tracemalloc
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.catalogue import make_image
from shim.faults import BadUpstreamResponse
from shim.legacy.render import PageRenderer, select_renderer
from shim.legacy.views import FALLBACK_SCHEMA, ImageSchema, link_context
from tests.unit.strategies import json_trees

pytestmark = pytest.mark.hypothesis

# test_render_sanitizers.py runs this module again under ASan, where everything is slower.
settings.register_profile("sanitizers", deadline=None, suppress_health_check=list(HealthCheck))
if os.environ.get("SHIM_RENDER_SANITIZERS"):
    settings.load_profile("sanitizers")

LINKS = link_context("http://shim:8774/compute", "v2.1", "4c6a1f", "http://glance:9292")
ODD_LINKS = link_context('http://h"\\\x01é:8774', "v2", None, "http://g/\u2028")
SCHEMA = ImageSchema(FALLBACK_SCHEMA.base - {"os_hidden"})
C = select_renderer("c")

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
_JSON = json_trees(_SCALARS, keys=st.text(max_size=4), width=3)
_ODD_TEXT = st.sampled_from(
    [
        "",
        '"',
        "\\",
        "\x00\x1f\x7f",
        "\b\f\n\r\t",
        "é",
        "\u2028",
        "\U0001f600",
        "\ud800",
        "a" * 9,
        'abcdefg"',
        "abcdefgh\\x",
    ]
)
_TEXT = st.one_of(st.text(max_size=24), _ODD_TEXT)
_TIME_SHAPES = st.sampled_from(
    [
        "2024-02-29T23:59:59Z",
        "2023-02-29T00:00:00Z",
        "2026-11-27T08:00:00Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-13-01T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T23:60:00Z",
        "2026-01-01T23:59:60Z",
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:00.123456Z",
        "2026-01-01T00:00:00+01:00",
        "2026-01-01T00:00:0aZ",
        "\uff12026-01-01T00:00:00Z",  # a fullwidth digit
        "",
    ]
)
_TIMES = st.one_of(
    st.none(),
    _TIME_SHAPES,
    st.datetimes().map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")),
    st.integers(0, 1),
)


def _json_text(draw: st.DrawFn) -> str:
    """Text for block_device_mapping / mappings: JSON as Nova writes it, or not quite."""
    value = draw(_JSON)
    separators = draw(st.sampled_from([(", ", ": "), (",", ":"), (" , ", " : "), ("\n,", ":\t")]))
    try:
        text = json.dumps(value, separators=separators, ensure_ascii=draw(st.booleans()))
    except ValueError:
        text = "[]"
    return draw(
        st.sampled_from(
            [
                text,
                f" \n{text}\r\t",
                text + "x",
                text[:-1],
                "[" * 40 + "]" * 40,
                "[" * 70 + "]" * 70,
                '{"a": 1, "a": 2}',
                '{"a": 1, "b": {"a": 2}}',
                "[-0, 0, -1, 123456789012345678]",
                "[1234567890123456789]",
                "[9223372036854775808]",
                "[18446744073709551616]",
                "[01]",
                "[1.5, 1e3, 1E3]",
                '["\\u00e9", "\\n", "a\\"b"]',
                '["tab\there"]',
                "[NaN]",
                "[true, false, null]",
                "[tru]",
                '"just a string"',
                "42",
                "",
                "   ",
            ]
        )
    )


@st.composite
def glance_records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for _ in range(draw(st.integers(0, 6))):
        key = draw(
            st.one_of(
                st.sampled_from(
                    [
                        "os_distro",
                        "instance_uuid",
                        "auto_disk_config",
                        "block_device_mapping",
                        "mappings",
                        "os_hidden",
                        "owner",
                        "tags",
                        "checksum",
                        "hw_disk_bus",
                    ]
                ),
                _TEXT,
            )
        )
        if key in ("block_device_mapping", "mappings") and draw(st.booleans()):
            record[key] = _json_text(draw)
        else:
            record[key] = draw(st.one_of(_TEXT, _JSON))
    fields = {
        "id": st.one_of(st.uuids().map(str), _TEXT, st.integers(), st.none()),
        "name": st.one_of(st.none(), _TEXT, st.integers()),
        "status": st.one_of(
            st.sampled_from(
                ["active", "queued", "saving", "deleted", "pending_delete", "killed", "ACTIVE"]
            ),
            _TEXT,
            st.none(),
            st.integers(),
            st.lists(st.integers(), max_size=1),
        ),
        "size": st.one_of(st.none(), st.integers(-(2**65), 2**65), st.floats(), _TEXT),
        "min_ram": st.one_of(st.none(), st.integers(-(2**64), 2**64), st.booleans(), _TEXT),
        "min_disk": st.one_of(st.none(), st.integers(0, 2**31), st.floats(0, 9)),
        "created_at": _TIMES,
        "updated_at": _TIMES,
    }
    for key, values in fields.items():
        if draw(st.integers(0, 9)) > 0:
            record[key] = draw(values)
    if draw(st.booleans()):
        record["instance_uuid"] = draw(st.one_of(st.uuids().map(str), _TEXT, st.integers()))
    if draw(st.booleans()):
        record["auto_disk_config"] = draw(
            st.one_of(
                st.sampled_from(["True", " yes ", "0", "off", "\uff34\uff32\uff35\uff25"]),
                st.booleans(),
            )
        )
    return record


def _reference(renderer: PageRenderer, images: list[Any]) -> bytes | type[BaseException]:
    try:
        return renderer.render_slow(images)
    except (BadUpstreamResponse, AttributeError, TypeError, ValueError) as error:
        return type(error)


def _decoded_like_glance(images: list[dict[str, Any]]) -> list[Any]:
    """The records as orjson.loads hands them over (shared key objects), when JSON can."""
    try:
        return list(orjson.loads(orjson.dumps(images)))
    except (TypeError, orjson.JSONEncodeError):
        return images


def _check_page(images: list[Any], schema: ImageSchema | None, links: Any = LINKS) -> None:
    renderer = PageRenderer(links, schema, C)
    reference = _reference(renderer, images)
    fast = renderer.render_fast(images)
    if fast is not None:
        assert fast == reference
    if isinstance(reference, bytes):
        assert renderer.render(images) == reference
    else:
        with pytest.raises(reference):
            renderer.render(images)


def test_the_c_renderer_is_built() -> None:
    # The project's install builds it (gcc is part of every supported build machine);
    # without it these properties would only compare views.py with itself (and C above
    # would have failed at import with RendererUnavailable).
    assert C.name == "c"
    assert C.accelerator is not None


@settings(max_examples=400)
@given(images=st.lists(glance_records(), max_size=4), detail=st.booleans())
@example(images=[{"id": "a", "size": 2**64 - 1}], detail=True)
@example(images=[{"id": "a", "instance_uuid": "\ud800"}], detail=True)
@example(images=[{"id": "a", "block_device_mapping": '["\ud800"]'}], detail=True)
@example(images=[{"id": "a", "mappings": "[" * 65 + "]" * 65}], detail=True)
@example(images=[{"id": "a", "mappings": "[" * 64 + "]" * 64}], detail=True)
def test_c_renderer_equals_views_or_steps_aside(images: list[dict[str, Any]], detail: bool) -> None:
    schema = SCHEMA if detail else None
    _check_page(images, schema)
    _check_page(_decoded_like_glance(images), schema, ODD_LINKS)


@settings(max_examples=200)
@given(images=st.lists(glance_records(), min_size=1, max_size=3))
def test_non_dict_records_and_pages_step_aside(images: list[Any]) -> None:
    _check_page([*images, ["not", "a", "record"]], SCHEMA)
    _check_page([*images, None], None)


def _catalogue_page(count: int) -> list[Any]:
    rng = random.Random(7)
    return list(orjson.loads(orjson.dumps([make_image(i, rng) for i in range(count)])))


def test_glance_shaped_pages_take_the_fast_road() -> None:
    # Snapshots (server, block_device_mapping), plain images, custom properties: what a
    # Glance 33 page holds (bench/catalogue.py follows docs/glance.md §1).
    page = _catalogue_page(60)
    for schema in (SCHEMA, None):
        renderer = PageRenderer(LINKS, schema, C)
        fast = renderer.render_fast(page)
        assert fast is not None
        assert fast == renderer.render_slow(page)


@given(
    names=st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=8, unique=True),
    value=_TEXT,
)
def test_plain_string_properties_take_the_fast_road(names: list[str], value: str) -> None:
    record: dict[str, Any] = dict.fromkeys(names, value)
    record.update(
        id="0b6a5f2e-8a9c-4c61-9d3a-5e0d7c2b1a40",
        name=value,
        status="active",
        size=1,
        min_ram=0,
        min_disk=None,
        created_at="2026-11-27T08:00:00Z",
        updated_at="2026-11-27T08:00:01Z",
    )
    if "\ud800" in value:
        return  # orjson cannot write lone surrogates: views.py decides
    page = [record]
    renderer = PageRenderer(LINKS, SCHEMA, C)
    assert renderer.render_fast(page) == renderer.render_slow(page)


def test_large_pages_and_values_grow_the_buffer() -> None:
    page = _catalogue_page(1200)
    page[3]["os_distro"] = "\x01" * 200_000  # six bytes out for each byte in
    renderer = PageRenderer(LINKS, SCHEMA, C)
    fast = renderer.render_fast(page)
    assert fast is not None
    assert fast == renderer.render_slow(page)
    assert len(orjson.loads(b"[" + fast + b"]")) == 1200


def test_an_empty_page_is_empty() -> None:
    assert PageRenderer(LINKS, SCHEMA, C).render([]) == b""
    assert PageRenderer(LINKS, None, C).render([]) == b""


def test_rendering_frees_what_it_touches() -> None:
    # A reference kept by the C code would keep each page's records alive: ~2 kB a record.
    page = _catalogue_page(60)
    page[1]["os_distro"] = 1.5  # written through orjson.dumps
    page[2]["block_device_mapping"] = '[{"size": 1.5}]'  # decoded by views._json_property
    page[3]["auto_disk_config"] = " Yes "  # views._bool_from_string
    odd = [dict(page[0], created_at="yesterday")]  # steps aside, views.py raises
    encoded, odd_encoded = orjson.dumps(page), orjson.dumps(odd)
    renderer = PageRenderer(LINKS, SCHEMA, C)

    def render_fresh_pages(times: int) -> None:
        for _ in range(times):
            assert renderer.render_fast(orjson.loads(encoded)) is not None
            assert renderer.render_fast(orjson.loads(odd_encoded)) is None

    render_fresh_pages(20)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        render_fresh_pages(300)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 256 * 1024, f"{after - before} bytes still held"
