"""Microversion headers and route ranges (docs/nova.md §2, appendix C)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shim.faults import BadRequest, NotAcceptable
from shim.legacy.microversion import (
    IMAGES_MAX,
    METADATA_MAX,
    MIN_VERSION,
    Version,
    parse_max,
    requested_version,
    route_allows,
    version_headers,
)
from shim.legacy.table import ROUTES, Route

MAX = Version(2, 104)
STD = "OpenStack-API-Version"
LEGACY = "X-OpenStack-Nova-API-Version"


def test_constants() -> None:
    assert Version(2, 1) == MIN_VERSION
    assert Version(2, 35) == IMAGES_MAX
    assert Version(2, 38) == METADATA_MAX
    assert str(IMAGES_MAX) == "2.35"
    assert str(Version(2, 0)) == "2.0"


def test_versions_compare_numerically() -> None:
    assert Version(2, 1000) > Version(2, 104) > Version(2, 35) > Version(2, 9)
    assert Version(3, 0) > Version(2, 999)
    assert sorted([Version(2, 10), Version(2, 9), Version(2, 100)]) == [
        Version(2, 9),
        Version(2, 10),
        Version(2, 100),
    ]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], Version(2, 1)),
        ([("Accept", "application/json")], Version(2, 1)),
        ([(LEGACY, "2.5")], Version(2, 5)),
        ([(LEGACY.lower(), "2.35")], Version(2, 35)),
        ([(STD, "compute 2.30")], Version(2, 30)),
        ([(STD.upper(), "COMPUTE 2.30")], Version(2, 30)),
        ([(STD, "compute   2.30 ")], Version(2, 30)),
        ([(LEGACY, " 2.7 ")], Version(2, 7)),
        # the standard header wins over the legacy one
        ([(LEGACY, "2.5"), (STD, "compute 2.20")], Version(2, 20)),
        # scanned from the right; other services and entries without a space are skipped
        ([(STD, "volume 3.0, compute 2.20")], Version(2, 20)),
        ([(STD, "compute 2.20, compute 2.25")], Version(2, 25)),
        ([(STD, "compute 2.20, volume 3.27")], Version(2, 20)),
        ([(STD, "compute 2.20, compute")], Version(2, 20)),
        # no compute entry: fall back to the legacy header, else 2.1
        ([(STD, "volume 3.0"), (LEGACY, "2.9")], Version(2, 9)),
        ([(STD, "volume 3.0")], Version(2, 1)),
        ([(STD, "compute")], Version(2, 1)),
        # the legacy header takes its last comma-separated item
        ([(LEGACY, "2.3, 2.8")], Version(2, 8)),
        # repeated headers fold with ","
        ([(LEGACY, "2.3"), (LEGACY, "2.7")], Version(2, 7)),
        ([(STD, "compute 2.3"), (STD, "compute 2.9")], Version(2, 9)),
        # "latest" (exactly) is the maximum
        ([(STD, "compute latest")], MAX),
        ([(LEGACY, "latest")], MAX),
        ([(LEGACY, "2.104")], MAX),
        ([(LEGACY, "2.10")], Version(2, 10)),
        # a WSGI-style header name never reaches Nova under that name
        ([("HTTP_OPENSTACK_API_VERSION", "compute 2.5")], Version(2, 1)),
        ([("http_x_openstack_nova_api_version", "2.5")], Version(2, 1)),
    ],
)
def test_requested_version(headers: list[tuple[str, str]], expected: Version) -> None:
    assert requested_version(headers, MAX) == expected


@pytest.mark.parametrize(
    "raw",
    ["2.01", "2", "v2.1", "Latest", "LATEST", "2.1.1", "02.1", "2.-1", "2.a", "", "\u0662.\u0665"],
)
def test_invalid_format_is_400_without_headers(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        requested_version([(LEGACY, raw)], MAX)
    assert caught.value.message == (
        f"API Version String {raw} is of invalid format. Must be of format MajorNum.MinorNum."
    )
    assert caught.value.status == 400
    assert caught.value.headers == ()


@pytest.mark.parametrize(
    ("header", "fault", "body"),
    [
        (
            "compute 2.01",
            BadRequest,
            b'{"badRequest": {"code": 400, "message": "API Version String 2.01 is of invalid '
            b'format. Must be of format MajorNum.MinorNum."}}',
        ),
        (
            "compute 3.0",
            NotAcceptable,
            b'{"computeFault": {"code": 406, "message": "Version 3.0 is not supported by the API. '
            b'Minimum is 2.1 and maximum is 2.104."}}',
        ),
    ],
)
def test_messages_of_appendix_c(
    header: str, fault: type[BadRequest | NotAcceptable], body: bytes
) -> None:
    with pytest.raises(fault) as caught:
        requested_version([(STD, header)], MAX)
    assert caught.value.body() == body


@pytest.mark.parametrize(
    ("raw", "echo"),
    [("3.0", "3.0"), ("2.0", "2.0"), ("1.5", "1.5"), ("2.999", "2.999"), ("2.1000", "2.1000")],
)
def test_out_of_range_is_406_echoing_the_version(raw: str, echo: str) -> None:
    with pytest.raises(NotAcceptable) as caught:
        requested_version([(LEGACY, raw)], MAX)
    fault = caught.value
    assert fault.status == 406
    assert fault.name == "computeFault"
    assert fault.message == (
        f"Version {echo} is not supported by the API. Minimum is 2.1 and maximum is 2.104."
    )
    assert fault.headers == (
        ("OpenStack-API-Version", f"compute {echo}"),
        ("X-OpenStack-Nova-API-Version", echo),
        ("Vary", "OpenStack-API-Version"),
        ("Vary", "X-OpenStack-Nova-API-Version"),
    )


def test_huge_version_is_406_not_a_crash() -> None:
    huge = "2." + "9" * 5000
    with pytest.raises(NotAcceptable) as caught:
        requested_version([(LEGACY, huge)], MAX)
    assert caught.value.message.startswith(f"Version {huge} is not supported")
    assert caught.value.headers[1] == ("X-OpenStack-Nova-API-Version", huge)


def test_maximum_is_configurable() -> None:
    low = Version(2, 35)
    assert requested_version([(LEGACY, "latest")], low) == low
    with pytest.raises(NotAcceptable, match=r"maximum is 2\.35\.$"):
        requested_version([(LEGACY, "2.36")], low)


def test_version_headers() -> None:
    assert version_headers(Version(2, 35)) == (
        ("OpenStack-API-Version", "compute 2.35"),
        ("X-OpenStack-Nova-API-Version", "2.35"),
        ("Vary", "OpenStack-API-Version"),
        ("Vary", "X-OpenStack-Nova-API-Version"),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2.104", Version(2, 104)), ("2.35", Version(2, 35)), ("2.1", MIN_VERSION)],
)
def test_parse_max(value: str, expected: Version) -> None:
    assert parse_max(value) == expected


@pytest.mark.parametrize(
    "value", ["2.0", "1.99", "2", "2.01", "latest", "", "2.5\n", " 2.5", "2.1234567890"]
)
def test_parse_max_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="microversion"):
        parse_max(value)


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.action)
def test_each_route_serves_nova_s_range(route: Route) -> None:
    # Nova: images.py up to 2.35, image_metadata.py up to 2.38 (docs/nova.md §2.1).
    until = METADATA_MAX if "/metadata" in route.template else IMAGES_MAX
    assert route.until == until
    assert route_allows(route.until, Version(2, 1), "nova")
    assert route_allows(route.until, until, "nova")
    assert not route_allows(route.until, Version(until.major, until.minor + 1), "nova")
    assert not route_allows(route.until, Version(2, 104), "nova")
    assert route_allows(route.until, Version(2, 104), "off")


_NAMES = st.sampled_from([STD, LEGACY, STD.lower(), LEGACY.upper(), "Vary", "X-Other"])
_VALUES = st.one_of(
    st.text(),
    st.from_regex(r"(compute |volume )?[0-9]{1,3}\.[0-9]{1,4}", fullmatch=True),
    st.sampled_from(["latest", "compute latest", "compute", ",", " , compute 2.3 ,"]),
)


@pytest.mark.hypothesis
@given(headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=4))
@example(headers=[(STD, "compute 2.5\n")])
@example(headers=[(LEGACY, "2." + "9" * 5000)])
@example(headers=[(STD, "compute \x00")])
def test_requested_version_raises_only_nova_faults(headers: list[tuple[str, str]]) -> None:
    outcome: Version | BadRequest | NotAcceptable
    try:
        outcome = requested_version(headers, MAX)
    except (BadRequest, NotAcceptable) as fault:
        outcome = fault
    if isinstance(outcome, NotAcceptable):
        assert outcome.status == 406
        assert outcome.headers[0][1].startswith("compute ")
    elif isinstance(outcome, BadRequest):
        assert outcome.message.startswith("API Version String ")
        assert outcome.headers == ()
    else:
        assert MIN_VERSION <= outcome <= MAX
