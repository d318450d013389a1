"""Nova list query -> Glance parameters (docs/nova.md §3, §4.6; docs/contract.md D1, D2, D9)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from shim.faults import BadRequest
from shim.legacy.query import (
    ListQuery,
    decode_query,
    glance_status,
    next_link_query,
    to_glance_query,
    wants_next_link,
)

UUID = "3f8b0cc9-5d1c-4b53-a4b4-8bd2e0e5b0a1"
LAST = "a2459075-d96c-40d5-893e-577ff92e721c"


def q(raw: str) -> ListQuery:
    return to_glance_query(decode_query(raw))


# --- decode_query (webob's parse_qsl_text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", []),
        ("limit=", [("limit", "")]),
        ("limit", [("limit", "")]),
        ("a=1&&b=2;c=3&", [("a", "1"), ("b", "2"), ("c", "3")]),
        ("x=a+b&y=%2B&z=a%20b", [("x", "a b"), ("y", "+"), ("z", "a b")]),
        ("a=b=c", [("a", "b=c")]),
        ("=v", [("", "v")]),
        ("name=caf%C3%A9&n%61me=x", [("name", "café"), ("name", "x")]),
        ("x=%zz&y=%4&z=%", [("x", "%zz"), ("y", "%4"), ("z", "%")]),
        (
            "changes-since=2011-01-24T17%3A08%2B01%3A00",
            [("changes-since", "2011-01-24T17:08+01:00")],
        ),
        ("name=a&name=b", [("name", "a"), ("name", "b")]),
        ("k=%00", [("k", "\x00")]),
    ],
)
def test_decode_query(raw: str, expected: list[tuple[str, str]]) -> None:
    assert decode_query(raw) == expected
    assert decode_query(raw.encode()) == expected


@pytest.mark.parametrize(
    "raw", ["name=%FF", "%C3=x", "name=%C3%28", "a=%ED%A0%80", "name=\udcff", "x=\ud800"]
)
def test_decode_query_refuses_non_utf8(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_query(raw)
    assert caught.value.message == "Query string is not UTF-8 encoded"


def test_decode_query_takes_aiohttp_surrogateescape_text() -> None:
    # what aiohttp hands over for raw UTF-8 bytes in the target
    raw = "name=café".encode().decode("utf-8", "surrogateescape")
    assert decode_query(raw) == [("name", "café")]


# --- filters (nova.md §3.1)


def test_no_parameters() -> None:
    assert q("") == ListQuery(filters=(), limit=None, marker=None, page_size=None)


@pytest.mark.parametrize(
    ("raw", "filters"),
    [
        # Nova's own unit tests (nova.md §3.1 [test])
        ("status=ACTIVE", (("status", "active"),)),
        ("type=BASE", (("image_type", "BASE"),)),
        (f"server={UUID}", (("instance_uuid", UUID),)),
        ("changes-since=2011-01-24T17:08Z", (("updated_at", "gte:2011-01-24T17:08Z"),)),
        ("property-test=3", (("test", "3"),)),
        ("UNSUPPORTEDFILTER=x", ()),
        # the rest of the table
        ("name=cirros", (("name", "cirros"),)),
        ("name=", (("name", ""),)),
        ('name=in:"a","b"', (("name", 'in:"a","b"'),)),
        ("minRam=512&minDisk=10", (("min_ram", "512"), ("min_disk", "10"))),
        ("minRam=0&minDisk=2147483647", (("min_ram", "0"), ("min_disk", "2147483647"))),
        (
            "changes-since=2011-01-24T17:08%2B01:00",
            (("updated_at", "gte:2011-01-24T17:08+01:00"),),
        ),
        (f"server=http://h/v2.1/p/servers/{UUID}", (("instance_uuid", UUID),)),
        (f"server=http://h/{UUID}", (("instance_uuid", UUID),)),
        ("server=http://h/servers/", (("instance_uuid", ""),)),
        ("type=snapshot", (("image_type", "snapshot"),)),
        # contract.md D1: exactly the prefix "property-" goes (Nova's lstrip: s_distro, wner_id)
        ("property-os_distro=ubuntu", (("os_distro", "ubuntu"),)),
        ("property-owner_id=x", (("owner_id", "x"),)),
        ("property-ramdisk_id=x", (("ramdisk_id", "x"),)),
        ("property-kernel-id=x", (("kernel-id", "x"),)),
        ("property-property-x=1", (("property-x", "1"),)),
        ("property-hw_disk_bus=scsi", (("hw_disk_bus", "scsi"),)),
        # Glance's paging and ordering controls are not properties
        ("property-=x", ()),
        ("property-limit=1&property-marker=m&property-sort_key=name", ()),
        ("property-sort_dir=asc&property-sort=name:asc", ()),
        # ignored like Nova
        ("sort_key=name&sort_dir=asc&visibility=public&owner=x&tag=t&is_public=true", ()),
        ("Name=x&STATUS=active&Property-x=1", ()),
    ],
)
def test_filters(raw: str, filters: tuple[tuple[str, str], ...]) -> None:
    assert q(raw).filters == filters


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # contract.md D2: a Nova status filters on the Glance statuses displayed as it
        ("ACTIVE", "active"),
        ("SAVING", "in:queued,saving"),
        ("ERROR", "killed"),
        ("DELETED", "in:deleted,pending_delete"),
        ("UNKNOWN", "in:uploading,importing,deactivated"),
        ("Saving", "in:queued,saving"),
        ("error", "killed"),
        ("unknown", "in:uploading,importing,deactivated"),
        # a Glance status name is sent as is
        ("active", "active"),
        ("saving", "saving"),
        ("queued", "queued"),
        ("deleted", "deleted"),
        ("pending_delete", "pending_delete"),
        ("deactivated", "deactivated"),
        ("killed", "killed"),
        ("uploading", "uploading"),
        ("importing", "importing"),
        # anything else is lower-cased and sent, like Nova
        ("BOGUS", "bogus"),
        ("Queued", "queued"),
        ("in:ACTIVE,QUEUED", "in:active,queued"),
        ("", ""),
    ],
)
def test_status(value: str, expected: str) -> None:
    assert glance_status(value) == expected
    assert to_glance_query([("status", value)]).filters == (("status", expected),)


def test_repeated_filter_uses_last_value() -> None:
    assert q("name=a&name=b&status=saving&status=ACTIVE").filters == (
        ("name", "b"),
        ("status", "active"),
    )


@pytest.mark.parametrize(
    ("raw", "uuid"),
    [
        ("server=a&property-instance_uuid=b", "b"),
        ("property-instance_uuid=b&server=a", "a"),
        ("server=a&property-instance_uuid=b&server=c", "c"),
        ("server=a&server=b&property-instance_uuid=x/y/c", "c"),
    ],
)
def test_server_and_property_instance_uuid_later_wins(raw: str, uuid: str) -> None:
    assert q(raw).filters == (("instance_uuid", uuid),)


def test_property_collides_with_nova_filter_later_wins() -> None:
    assert q("name=a&property-name=b").filters == (("name", "b"),)
    assert q("property-name=b&name=a").filters == (("name", "a"),)
    assert q("changes-since=x&property-updated_at=y").filters == (("updated_at", "y"),)


# --- pagination (nova.md §3.2, Nova >= 30 messages of appendix C)


@pytest.mark.parametrize("name", ["limit", "page_size", "offset"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "Value: abc. 'abc' does not match '^[0-9]*$'"),
        ("-1", "Value: -1. '-1' does not match '^[0-9]*$'"),
        ("0", "Value: 0. 0 is less than the minimum of 1"),
        ("", "Value: . '' should be non-empty"),
        ("000", "Value: 000. 0 is less than the minimum of 1"),
        ("1.5", "Value: 1.5. '1.5' does not match '^[0-9]*$'"),
        (" 1", "Value:  1. ' 1' does not match '^[0-9]*$'"),
        ("1e3", "Value: 1e3. '1e3' does not match '^[0-9]*$'"),
        ("٣", "Value: ٣. '٣' does not match '^[0-9]*$'"),
        ("it's", "Value: it's. \"it's\" does not match '^[0-9]*$'"),
        ("0" * 5000, "Value: " + "0" * 5000 + ". 0.0 is less than the minimum of 1"),
    ],
)
def test_pagination_validation(name: str, value: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        to_glance_query([(name, value)])
    assert caught.value.message == f"Invalid input for query parameters {name}. {message}"


def test_appendix_c_bodies() -> None:
    for raw, message in [
        (
            "limit=abc",
            "Invalid input for query parameters limit. Value: abc. 'abc' does not match '^[0-9]*$'",
        ),
        (
            "limit=-1",
            "Invalid input for query parameters limit. Value: -1. '-1' does not match '^[0-9]*$'",
        ),
        (
            "limit=0",
            "Invalid input for query parameters limit. Value: 0. 0 is less than the minimum of 1",
        ),
        ("limit=", "Invalid input for query parameters limit. Value: . '' should be non-empty"),
    ]:
        with pytest.raises(BadRequest) as caught:
            q(raw)
        assert caught.value.status == 400
        assert caught.value.message == message


@pytest.mark.parametrize(
    ("raw", "culprit"),
    [
        # every repeated value is validated, not only the last one used
        ("limit=abc&limit=5", "limit. Value: abc."),
        ("limit=5&limit=0", "limit. Value: 0."),
        # schema order: limit, page_size, offset, whatever the query order
        ("offset=abc&page_size=x&limit=0", "limit. Value: 0."),
        ("offset=abc&page_size=x", "page_size. Value: x."),
        ("offset=0&limit=1", "offset. Value: 0."),
    ],
)
def test_validation_order(raw: str, culprit: str) -> None:
    with pytest.raises(BadRequest, match=r"^Invalid input for query parameters ") as caught:
        q(raw)
    assert culprit in caught.value.message


def test_newline_passes_the_schema_but_not_int() -> None:
    # re.search("^[0-9]*$") matches before a final newline, then oslo's int() refuses "\n"
    assert q("limit=5%0A").limit == 5
    with pytest.raises(BadRequest) as caught:
        q("limit=%0A")
    assert caught.value.message == "Invalid input received: limit must be an integer"
    with pytest.raises(BadRequest, match=r"^Invalid input received: offset must be an integer$"):
        q("offset=%0A")


def test_pagination_values() -> None:
    query = q(f"limit=5&limit=7&page_size=2&marker=x&marker={UUID}&offset=3")
    assert query == ListQuery(filters=(), limit=7, marker=UUID, page_size=2)


@pytest.mark.parametrize(
    ("raw", "page_size"), [("page_size=1", 1), ("page_size=1000", 1000), ("page_size=5000", 1000)]
)
def test_page_size_is_capped_at_glance_maximum(raw: str, page_size: int) -> None:
    assert q(raw).page_size == page_size


def test_limit_is_not_clamped() -> None:
    assert q("limit=5000").limit == 5000
    assert q("limit=" + "9" * 40).limit == int("9" * 40)


def test_empty_marker_means_first_page() -> None:
    assert q("marker=").marker is None
    assert q("marker=a&marker=").marker is None
    assert q("marker=&marker=a").marker == "a"


def test_offset_is_validated_then_ignored() -> None:
    assert q("offset=10") == ListQuery(filters=(), limit=None, marker=None, page_size=None)


def test_full_query() -> None:
    query = q(
        "name=cirros&status=SAVING&changes-since=2024-01-02T03%3A04%3A05Z&minRam=512"
        f"&type=snapshot&server={UUID}&property-os_distro=ubuntu&limit=2&marker={LAST}"
        "&sort_key=name"
    )
    assert query == ListQuery(
        filters=(
            ("name", "cirros"),
            ("status", "in:queued,saving"),
            ("updated_at", "gte:2024-01-02T03:04:05Z"),
            ("min_ram", "512"),
            ("image_type", "snapshot"),
            ("instance_uuid", UUID),
            ("os_distro", "ubuntu"),
        ),
        limit=2,
        marker=LAST,
        page_size=None,
    )


# --- next link (nova.md §4.6, contract.md D9)


def test_next_link_of_section_4_6_with_d9() -> None:
    # Nova: limit=2&marker=<id>&name=b&property-x=1&zeta=1 (greatest value; <= 29 kept zeta).
    # Nova >= 30 drops zeta; contract.md D9 carries the value that was applied: name=a.
    params = decode_query("name=b&limit=2&name=a&zeta=1&property-x=1&marker=m1")
    assert next_link_query(params, LAST) == f"limit=2&marker={LAST}&name=a&property-x=1"


def test_next_link_of_nova_unit_test() -> None:
    assert next_link_query([("limit", "1")], LAST) == f"limit=1&marker={LAST}"


def test_marker_is_appended_last_when_absent() -> None:
    params = decode_query("status=ACTIVE&limit=1&name=x")
    assert next_link_query(params, LAST) == f"limit=1&name=x&status=ACTIVE&marker={LAST}"


def test_next_link_keeps_known_and_property_params_only() -> None:
    params = decode_query(
        "sort_key=name&foo=1&property-os_distro=a%20b&page_size=5&offset=2&minRam=1"
        "&minDisk=2&type=t&server=s&changes-since=2011-01-24T17%3A08%2B01%3A00&limit=3"
    )
    assert next_link_query(params, LAST) == (
        "changes-since=2011-01-24T17%3A08%2B01%3A00&limit=3&minDisk=2&minRam=1&offset=2"
        f"&page_size=5&property-os_distro=a+b&server=s&type=t&marker={LAST}"
    )


def test_next_link_encodes_like_urlencode() -> None:
    params = [("name", "a/b c&d=é"), ("marker", "x")]
    assert next_link_query(params, "id/1") == "marker=id%2F1&name=a%2Fb+c%26d%3D%C3%A9"


@pytest.mark.parametrize(
    ("limit", "max_limit", "returned", "expected"),
    [
        (None, 1000, 1000, True),  # no limit: a link only if exactly max_limit came back
        (None, 1000, 999, False),
        (None, 1000, 1001, False),
        (1, 1000, 1, True),
        (2, 1000, 1, False),
        (5000, 1000, 1000, True),  # limit above max_limit
        (5000, 1000, 5000, False),
        (1, 1000, 0, False),
        (3, 2, 2, True),
    ],
)
def test_wants_next_link(limit: int | None, max_limit: int, returned: int, expected: bool) -> None:
    assert wants_next_link(limit, max_limit, returned) is expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("minRam", "abc"),
        ("minDisk", "2147483648"),
        ("minDisk", "-1"),
        ("minRam", "1.5"),
        ("minRam", "\uff11"),  # a full-width digit
        ("property-min_ram", "x"),
    ],
)
def test_glance_integer_filters_are_32_bit_integers(name: str, value: str) -> None:
    """contract.md D15: what Glance on PostgreSQL would answer 500 to is a 400 here."""
    with pytest.raises(BadRequest) as raised:
        to_glance_query([(name, value)])
    assert raised.value.message == (
        f"Invalid input for query parameters {name}. Value: {value}. "
        f"{value!r} is not an integer from 0 to 2147483647"
    )


def test_only_the_applied_integer_filter_value_is_checked() -> None:
    assert dict(to_glance_query([("minRam", "x"), ("minRam", "5")]).filters) == {"min_ram": "5"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "name=a%00b",
            "Invalid input for query parameters name. The value contains a NUL character.",
        ),
        (
            "server=%00",
            "Invalid input for query parameters server. The value contains a NUL character.",
        ),
        (
            "property-x=%00",
            "Invalid input for query parameters property-x. The value contains a NUL character.",
        ),
        ("limit=1&marker=%00<", "HTTP 400 Bad Request: No image found with ID \x00&lt;"),
    ],
)
def test_a_nul_never_reaches_glance(query: str, message: str) -> None:
    """contract.md D14: Glance on PostgreSQL answers 500 to a NUL; it is bad input."""
    with pytest.raises(BadRequest) as raised:
        to_glance_query(parse_qsl(query, keep_blank_values=True))
    assert raised.value.message == message
