from __future__ import annotations

from ipaddress import ip_network

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shim.headers import (
    HOP_BY_HOP,
    client_scheme_host,
    filter_request_headers,
    filter_response_headers,
    forwarded_headers,
    is_trusted,
    is_valid_host,
    via_value,
)

Headers = list[tuple[str, str]]


def test_request_filter_drops_hop_by_hop_host_expect_and_connection_listed() -> None:
    inbound = [
        ("Host", "shim.example"),
        ("Connection", "keep-alive, X-Secret"),
        ("Connection", "Upgrade"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers"),
        ("Trailer", "X-Checksum"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic eA=="),
        ("Proxy-Authenticate", "Basic"),
        ("Expect", "100-continue"),
        ("x-secret", "hop"),
        ("X-Auth-Token", "tok"),
        ("Content-Length", "12"),
        ("Accept", "application/json"),
    ]
    assert filter_request_headers(inbound) == [
        ("X-Auth-Token", "tok"),
        ("Content-Length", "12"),
        ("Accept", "application/json"),
    ]


def test_response_filter_keeps_length_and_encoding_and_host() -> None:
    upstream = [
        ("Content-Length", "30"),
        ("Content-Encoding", "gzip"),
        ("Connection", "close, X-Internal"),
        ("X-Internal", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Host", "kept-on-responses"),
    ]
    assert filter_response_headers(upstream) == [
        ("Content-Length", "30"),
        ("Content-Encoding", "gzip"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Host", "kept-on-responses"),
    ]


def test_repeated_headers_keep_order() -> None:
    inbound = [("X-A", "1"), ("X-B", "x"), ("x-a", "2"), ("X-A", "3")]
    assert filter_request_headers(inbound) == inbound
    assert filter_response_headers(inbound) == inbound


_names = st.one_of(
    st.sampled_from(
        sorted(HOP_BY_HOP | {"Host", "Expect", "X-Auth-Token", "Content-Length", "X-A"})
    ),
    st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,12}", fullmatch=True),
).map(lambda name: name.upper() if len(name) % 2 else name)
_values = st.from_regex(r"[ -~]{0,30}", fullmatch=True)
_connection_values = st.lists(_names, max_size=4).map(", ".join)
_headers = st.lists(
    st.one_of(st.tuples(_names, _values), st.tuples(st.just("Connection"), _connection_values)),
    max_size=12,
)


def _listed(headers: Headers) -> set[str]:
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }


@pytest.mark.hypothesis
@given(_headers)
@example([("Connection", "X-A, keep-alive"), ("X-A", "1"), ("x-b", "2")])
@example([("connection", "Connection"), ("Keep-Alive", "1")])
def test_request_filter_properties(headers: Headers) -> None:
    once = filter_request_headers(headers)
    assert filter_request_headers(once) == once
    names = {name.lower() for name, _ in once}
    assert not names & (HOP_BY_HOP | {"host", "expect"} | _listed(headers))
    # Whatever survives keeps its relative order and repeats.
    assert once == [pair for pair in headers if pair in once]


@pytest.mark.hypothesis
@given(_headers)
def test_response_filter_properties(headers: Headers) -> None:
    once = filter_response_headers(headers)
    assert filter_response_headers(once) == once
    assert not {name.lower() for name, _ in once} & (HOP_BY_HOP | _listed(headers))


TRUSTED = frozenset(map(ip_network, ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32")))


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("10.1.2.3", True),
        ("192.0.2.7", True),
        ("192.0.2.8", False),
        ("2001:db8::1", True),
        ("[2001:db8::1]", True),
        ("::ffff:10.0.0.1", True),
        ("fe80::1%eth0", False),
        ("not-an-ip", False),
        ("", False),
        (None, False),
    ],
)
def test_is_trusted_exact_and_cidr(peer: str | None, expected: bool) -> None:
    assert is_trusted(peer, TRUSTED) is expected


def test_is_trusted_with_no_configuration() -> None:
    assert not is_trusted("127.0.0.1", frozenset())


SPOOF: Headers = [
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
    ("Forwarded", 'for=1.2.3.4;proto=https;host="evil.example"'),
]


@pytest.mark.parametrize(
    ("peer", "headers", "host", "expected"),
    [
        pytest.param(
            "203.0.113.9",
            SPOOF,
            "shim:8774",
            ("http", "shim:8774"),
            id="untrusted peer: forwarding fields ignored",
        ),
        pytest.param(
            "10.0.0.1",
            SPOOF,
            "shim:8774",
            ("https", "evil.example"),
            id="trusted peer: Forwarded wins over X-Forwarded",
        ),
        # 10.0.0.8 and 10.0.0.9 are trusted proxies, 1.2.3.4 is the client: the element added
        # by the proxy that saw 1.2.3.4 counts; what 6.6.6.6 claimed does not.
        pytest.param(
            "10.0.0.1",
            [
                ("Forwarded", 'for=6.6.6.6;proto=https;host="spoofed.example"'),
                ("Forwarded", 'for=1.2.3.4;proto=https;host="api.example:8443", for=10.0.0.9'),
                ("Forwarded", "for=10.0.0.8;proto=http;host=inner"),
            ],
            "shim",
            ("https", "api.example:8443"),
            id="trusted peer: Forwarded uses the nearest untrusted hop",
        ),
        pytest.param(
            "10.0.0.1",
            [
                ("X-Forwarded-For", "6.6.6.6, 1.2.3.4"),
                ("X-Forwarded-Proto", "http, HTTPS"),
                ("X-Forwarded-Host", "evil.example"),
                ("X-Forwarded-Host", "api.example"),
            ],
            "shim",
            ("https", "api.example"),
            id="trusted peer: X-Forwarded rightmost value",
        ),
        pytest.param(
            "10.0.0.1",
            [
                ("X-Forwarded-For", "1.2.3.4, 10.0.0.5"),
                ("X-Forwarded-Proto", "https, http"),
                ("X-Forwarded-Host", "api.example, inner"),
            ],
            "shim",
            ("https", "api.example"),
            id="trusted peer: X-Forwarded walks the trusted hops",
        ),
    ],
)
def test_client_scheme_host(
    peer: str, headers: Headers, host: str, expected: tuple[str, str]
) -> None:
    assert client_scheme_host(peer, headers, "http", host, TRUSTED) == expected


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Forwarded-Proto", "javascript"), ("X-Forwarded-Host", "a b")],
        [("X-Forwarded-Host", "evil.example/path")],
        [("X-Forwarded-Host", "user@evil.example")],
        [("Forwarded", 'host="evil.example\\"x";proto=ftp')],
        [("Forwarded", "for=1.2.3.4;;;garbage")],
    ],
)
def test_malformed_forwarded_values_ignored(headers: Headers) -> None:
    assert client_scheme_host("10.0.0.1", headers, "http", "shim", TRUSTED) == ("http", "shim")


@pytest.mark.parametrize(
    ("host", "valid"),
    [
        ("api.example", True),
        ("api.example:8774", True),
        ("127.0.0.1:1", True),
        ("[2001:db8::1]:8774", True),
        ("localhost.", True),
        ("a b", False),
        ("a/b", False),
        ("a@b", False),
        ("a:port", False),
        ('a"b', False),
        ("", False),
    ],
)
def test_is_valid_host(host: str, valid: bool) -> None:
    assert is_valid_host(host) is valid


@pytest.mark.parametrize(
    ("existing", "peer", "scheme", "host", "trusted", "expected"),
    [
        pytest.param(
            [
                ("X-Auth-Token", "t"),
                ("X-Forwarded-For", "6.6.6.6"),
                ("x-forwarded-proto", "https"),
                ("X-Forwarded-Host", "evil"),
                ("Forwarded", "for=6.6.6.6"),
            ],
            "203.0.113.9",
            "http",
            "shim:8774",
            False,
            [
                ("X-Auth-Token", "t"),
                ("X-Forwarded-For", "203.0.113.9"),
                ("X-Forwarded-Proto", "http"),
                ("X-Forwarded-Host", "shim:8774"),
            ],
            id="untrusted: replaces everything",
        ),
        pytest.param(
            [
                ("X-Forwarded-For", "1.2.3.4"),
                ("X-Forwarded-For", "10.0.0.5"),
                ("X-Forwarded-Proto", "https"),
                ("Forwarded", "for=1.2.3.4"),
            ],
            "10.0.0.1",
            "https",
            "api.example",
            True,
            [
                ("Forwarded", "for=1.2.3.4"),
                ("X-Forwarded-For", "1.2.3.4, 10.0.0.5, 10.0.0.1"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "api.example"),
            ],
            id="trusted: appends to the chain",
        ),
        pytest.param(
            [],
            None,
            "http",
            "shim",
            False,
            [("X-Forwarded-Proto", "http"), ("X-Forwarded-Host", "shim")],
            id="without a peer",
        ),
        pytest.param(
            [],
            "[2001:db8::1]",
            "http",
            "shim",
            False,
            [
                ("X-Forwarded-For", "2001:db8::1"),
                ("X-Forwarded-Proto", "http"),
                ("X-Forwarded-Host", "shim"),
            ],
            id="IPv6 peer unbracketed",
        ),
    ],
)
def test_forwarded_headers(
    existing: Headers,
    peer: str | None,
    scheme: str,
    host: str,
    trusted: bool,
    expected: Headers,
) -> None:
    assert forwarded_headers(existing, peer, scheme, host, trusted=trusted) == expected


def test_via_value() -> None:
    assert via_value(1, 1) == "1.1 nova-image-shim"
    assert via_value(1, 0) == "1.0 nova-image-shim"
