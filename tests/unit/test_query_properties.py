"""Properties of the query translators (Hypothesis): only `BadRequest`, never another error."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shim.faults import BadRequest
from shim.legacy.query import (
    KNOWN_PARAMS,
    ListQuery,
    decode_query,
    next_link_query,
    to_glance_query,
    wants_next_link,
)
from shim.settings import GLANCE_MAX_PAGE

pytestmark = pytest.mark.hypothesis
NOT_UTF8 = "Query string is not UTF-8 encoded"

_NAMES = st.one_of(
    st.sampled_from(sorted(KNOWN_PARAMS)),
    st.sampled_from(["property-", "property-os_distro", "property-limit", "sort_key", "zeta"]),
    st.text(max_size=12).map(lambda name: "property-" + name),
    st.text(max_size=12),
)
_NUMBERS = st.one_of(
    st.integers(min_value=-5, max_value=10**6).map(str),
    st.sampled_from(["", "0", "00", "abc", "1.5", "5\n", "\n", " 1", "٣", "1" * 5000]),
)
_VALUES = st.one_of(st.text(max_size=20), _NUMBERS)
_PAIRS = st.lists(st.tuples(_NAMES, _VALUES), max_size=8)
_FILTER_TO_GLANCE = {
    "name": "name",
    "status": "status",
    "changes-since": "updated_at",
    "server": "instance_uuid",
    "type": "image_type",
    "minRam": "min_ram",
    "minDisk": "min_disk",
}


@given(params=_PAIRS)
@example(params=[("limit", "1" * 5000)])
@example(params=[("limit", "0" * 5000)])
@example(params=[("page_size", "\n")])
@example(params=[("property-", "x"), ("server", "/")])
def test_every_query_maps_or_is_a_bad_request(params: list[tuple[str, str]]) -> None:
    query: ListQuery | BadRequest
    try:
        query = to_glance_query(params)
    except BadRequest as fault:
        query = fault
    if isinstance(query, BadRequest):
        assert query.status == 400
        assert query.message.startswith("Invalid input")
        return
    assert query.limit is None or query.limit >= 1
    assert query.page_size is None or 1 <= query.page_size <= GLANCE_MAX_PAGE
    assert query.marker is None or query.marker
    names = [name for name, _ in query.filters]
    assert len(names) == len(set(names))
    assert {"", "limit", "marker"}.isdisjoint(names)
    # every accepted Nova filter shows up as its Glance parameter
    glance = dict(query.filters)
    for name, _ in params:
        if name in _FILTER_TO_GLANCE:
            assert _FILTER_TO_GLANCE[name] in glance
        elif name.startswith("property-") and name[9:] not in (
            "",
            "limit",
            "marker",
            "sort",
            "sort_key",
            "sort_dir",
        ):
            assert name[9:] in glance


@given(
    params=st.lists(st.tuples(st.sampled_from(sorted(_FILTER_TO_GLANCE)), st.text()), min_size=1)
)
def test_last_value_is_applied(params: list[tuple[str, str]]) -> None:
    # contract.md D15: a min_ram/min_disk value that is no 32-bit integer is refused.
    last = {_FILTER_TO_GLANCE[n]: v for n, v in params if n in ("minRam", "minDisk")}
    if any(v and not (v.isascii() and v.isdigit() and int(v) < 2**31) for v in last.values()):
        with pytest.raises(BadRequest):
            to_glance_query(params)
        return
    outcome: dict[str, str] | BadRequest
    try:
        outcome = dict(to_glance_query(params).filters)
    except BadRequest as fault:
        outcome = fault
    if isinstance(outcome, BadRequest):
        # contract.md D14: otherwise only a NUL in a value is refused.
        assert "NUL" in outcome.message, outcome.message
        assert any("\x00" in value for _, value in params)
        return
    glance = outcome
    name, value = params[-1]
    key = _FILTER_TO_GLANCE[name]
    if name == "name" or name == "type" or name == "minRam" or name == "minDisk":
        assert glance[key] == value
    elif name == "changes-since":
        assert glance[key] == "gte:" + value
    elif name == "server":
        assert glance[key] == value.rpartition("/")[2]


def _decodes_or_is_not_utf8(raw: bytes | str) -> None:
    """Pairs, or a refusal with the non-UTF-8 message: never another error."""
    try:
        decode_query(raw)
    except BadRequest as fault:
        message = fault.message
    else:
        message = NOT_UTF8
    assert message == NOT_UTF8


@given(raw=st.binary(max_size=40))
@example(raw=b"a=%ff")
@example(raw=b"\xff=1")
@example(raw=b"a=%C3")
def test_decode_query_bytes_gives_pairs_or_a_bad_request(raw: bytes) -> None:
    _decodes_or_is_not_utf8(raw)


@given(raw=st.text(max_size=40))
@example(raw="\udcff")
@example(raw="\ud800=1")
def test_decode_query_text_gives_pairs_or_a_bad_request(raw: str) -> None:
    _decodes_or_is_not_utf8(raw)


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=15)


@given(pairs=st.lists(st.tuples(_TEXT.filter(bool), _TEXT), max_size=6))
@example(pairs=[("a+b", "c d&e;f=g%")])
def test_decode_query_reads_urlencode(pairs: list[tuple[str, str]]) -> None:
    assert decode_query(urlencode(pairs)) == pairs


@given(params=_PAIRS, last_id=_TEXT)
@example(params=[("marker", "m1"), ("name", "b"), ("name", "a")], last_id="id")
@example(params=[("property-", "x"), ("limit", "1")], last_id="a&b")
def test_next_link_round_trips(params: list[tuple[str, str]], last_id: str) -> None:
    pairs = decode_query(next_link_query(params, last_id))
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names))
    assert dict(pairs)["marker"] == last_id
    others = [name for name in names if name != "marker"]
    assert others == sorted(others)
    expected = {
        name: value
        for name, value in params
        if name in KNOWN_PARAMS or name.startswith("property-")
    }
    expected["marker"] = last_id
    assert dict(pairs) == expected  # the last (applied) value of each, docs/contract.md D9


@given(
    limit=st.one_of(st.none(), st.integers(min_value=1, max_value=5000)),
    max_limit=st.integers(min_value=1, max_value=2000),
    returned=st.integers(min_value=0, max_value=5000),
)
def test_next_link_only_for_a_full_page(limit: int | None, max_limit: int, returned: int) -> None:
    wanted = wants_next_link(limit, max_limit, returned)
    assert wanted == (returned == min(max_limit if limit is None else limit, max_limit))
