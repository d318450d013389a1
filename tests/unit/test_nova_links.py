"""Keeping Nova's links on the shim: examples and properties of the pure rewrite."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shim.headers import link_base, told_hosts
from shim.nova_links import BUFFERED_BODY_MAX, body_mode, nova_links
from tests.unit.strategies import json_trees

pytestmark = pytest.mark.hypothesis

NOVA = "http://nova.internal:8774/compute"
PUBLIC = "https://api.example/legacy"


# --- Location -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (
            "http://nova.internal:8774/compute/v2.1/servers/1",
            "https://api.example/legacy/v2.1/servers/1",
        ),
        (
            "HTTP://NOVA.internal:8774/compute/v2.1/a%2Fb?x=%28+1%29#frag",
            "https://api.example/legacy/v2.1/a%2Fb?x=%28+1%29#frag",
        ),
        # Nova told https by a forwarded proto still names its own host: Nova's link.
        ("https://nova.internal:8774/compute/x", "https://api.example/legacy/x"),
        ("http://nova.internal:8774/compute", "https://api.example/legacy"),
        ("http://nova.internal:8774/compute?x", "https://api.example/legacy?x"),
        ("/compute/v2.1/servers/1", "/legacy/v2.1/servers/1"),
        ("/compute", "/legacy"),
        # Already on the public base, or not under Nova: unchanged.
        ("https://api.example/legacy/v2.1/x", "https://api.example/legacy/v2.1/x"),
        ("/legacy/v2.1/x", "/legacy/v2.1/x"),
        ("http://nova.internal:8774/computer/x", "http://nova.internal:8774/computer/x"),
        ("http://nova.internal:9999/compute/x", "http://nova.internal:9999/compute/x"),
        ("http://nova.internal:8774/", "http://nova.internal:8774/"),
        ("http://glance/v2/images", "http://glance/v2/images"),
        ("/identity/v3", "/identity/v3"),
        ("servers/1", "servers/1"),
        ("//nova.internal:8774/compute/x", "//nova.internal:8774/compute/x"),
        ("http://[::1", "http://[::1"),
        ("", ""),
    ],
)
def test_location(location: str, expected: str) -> None:
    assert nova_links(NOVA, PUBLIC).location(location) == expected


def test_location_default_ports_no_prefix_and_told_hosts() -> None:
    links = nova_links("http://nova:80/", "https://api.example", ("shim.example:8774",))
    assert links.location("http://nova/v2.1/x") == "https://api.example/v2.1/x"
    assert links.location("http://nova:80/v2.1/x") == "https://api.example/v2.1/x"
    assert links.location("https://nova:80/v2.1/x") == "https://api.example/v2.1/x"
    assert links.location("https://nova/v2.1/x") == "https://nova/v2.1/x"
    assert links.location("http://shim.example:8774/v2.1/x") == "https://api.example/v2.1/x"
    assert links.location("/v2.1/x") == "/v2.1/x"


def test_location_ipv6_hosts() -> None:
    links = nova_links("http://[fd00::5]:8774", "http://[::1]:9000", ("[FD00::7]",))
    assert links.location("http://[fd00::5]:8774/v2.1/") == "http://[::1]:9000/v2.1/"
    assert links.location("https://[fd00::7]/v2.1/") == "http://[::1]:9000/v2.1/"
    assert links.location("http://[fd00::6]:8774/v2.1/") == "http://[fd00::6]:8774/v2.1/"


# --- bodies ----------------------------------------------------------------------------------


def _flavors(base: str) -> bytes:
    return json.dumps(
        {
            "flavors": [
                {
                    "id": "1",
                    "links": [
                        {"href": f"{base}/v2.1/flavors/1", "rel": "self"},
                        {"href": f"{base}/flavors/1", "rel": "bookmark"},
                    ],
                    "name": "m1.tiny",
                }
            ],
            "flavors_links": [{"href": f"{base}/v2.1/flavors?marker=1", "rel": "next"}],
        }
    ).encode()


def test_flavor_list_links_moved_and_nothing_else() -> None:
    links = nova_links(NOVA, PUBLIC)
    assert links.body(_flavors(NOVA)) == _flavors(PUBLIC)


def test_version_document_keeps_foreign_links() -> None:
    document = (
        b'{"version": {"id": "v2.1", "links": [{"rel": "self", "href": '
        b'"http://10.0.0.5:8774/v2.1/"}, {"rel": "describedby", "type": "text/html", '
        b'"href": "http://docs.openstack.org/"}]}}'
    )
    links = nova_links("http://10.0.0.5:8774", "http://127.0.0.1:9000")
    assert links.body(document) == document.replace(b"10.0.0.5:8774", b"127.0.0.1:9000")


def test_told_host_links_moved_to_public_url() -> None:
    # Nova with proxy-header parsing on: links on the host the shim forwarded.
    links = nova_links("http://10.0.0.5:8774", "https://compute.example.com", ("shim:8774",))
    body = _flavors("http://shim:8774")
    assert links.body(body) == _flavors("https://compute.example.com")


def test_links_already_public_get_no_second_prefix() -> None:
    links = nova_links("http://nova", "https://compute.example.com/p", ("compute.example.com",))
    assert links.body(_flavors("https://compute.example.com/p")) == _flavors(
        "https://compute.example.com/p"
    )
    assert links.body(_flavors("http://compute.example.com")) == _flavors(
        "https://compute.example.com/p"
    )


def test_only_href_members_change() -> None:
    def server(links_base: str) -> dict[str, Any]:
        return {
            "server": {
                "name": f"{NOVA}/v2.1/x",
                "metadata": {"url": f"{NOVA}/v2.1/y"},
                "note": f'"href": "{NOVA}/v2.1/z"',
                '"href': f"{NOVA}/v2.1/w",
                "links": [{"href": f"{links_base}/v2.1/servers/1", "rel": "self"}],
            }
        }

    out = nova_links(NOVA, PUBLIC).body(json.dumps(server(NOVA)).encode())
    assert json.loads(out) == server(PUBLIC)


def test_public_base_is_json_escaped() -> None:
    links = nova_links("http://nova", 'http://we"ird\\host')
    out = links.body(b'{"links": [{"href": "http://nova/v2.1/"}]}')
    assert json.loads(out) == {"links": [{"href": 'http://we"ird\\host/v2.1/'}]}


@pytest.mark.parametrize(
    ("method", "status", "content_type", "encoding", "length", "mode"),
    [
        ("GET", 200, "application/json", None, 100, "whole"),
        ("GET", 300, "application/json; charset=UTF-8", None, 100, "whole"),
        ("POST", 202, "application/vnd.openstack.compute+json", "identity", 10, "whole"),
        ("GET", 200, "APPLICATION/JSON", None, BUFFERED_BODY_MAX, "whole"),
        ("GET", 200, "application/json", None, BUFFERED_BODY_MAX + 1, "stream"),
        ("GET", 200, "application/json", None, None, "stream"),
        ("GET", 200, "application/json", "gzip", 100, "as-is"),
        ("GET", 200, "application/octet-stream", None, 100, "as-is"),
        ("GET", 200, "text/html", None, 100, "as-is"),
        ("GET", 200, "application/jsonp", None, 100, "as-is"),
        ("GET", 200, None, None, 100, "as-is"),
        ("HEAD", 200, "application/json", None, 100, "as-is"),
        ("DELETE", 204, "application/json", None, 0, "as-is"),
        ("GET", 304, "application/json", None, None, "as-is"),
        ("GET", 101, "application/json", None, None, "as-is"),
    ],
)
def test_body_mode(
    method: str,
    status: int,
    content_type: str | None,
    encoding: str | None,
    length: int | None,
    mode: str,
) -> None:
    assert body_mode(method, status, content_type, encoding, length) == mode


def test_told_hosts_and_link_base() -> None:
    headers = [
        ("X-Forwarded-Host", "shim.example:8774"),
        ("Forwarded", 'for=1.2.3.4;host="a.example";proto=https, for=5.6.7.8'),
        ("X-Forwarded-Host", "shim.example:8774"),
    ]
    assert told_hosts(headers) == ("shim.example:8774", "a.example")
    assert told_hosts([("Accept", "*/*")]) == ()
    assert link_base(None, "http", "[::1]:8774") == "http://[::1]:8774"


# --- properties ------------------------------------------------------------------------------

_HOSTS = st.sampled_from(["nova.internal:8774", "10.0.0.5", "[fd00::5]:8774", "shim:9000"])
_PREFIXES = st.sampled_from(["", "/compute", "/a/b"])
_PUBLICS = st.sampled_from(
    ["http://127.0.0.1:9000", "https://compute.example.com", "https://c.example/pre/fix"]
)
_SPELLINGS = st.sampled_from(
    [
        "http://nova.internal:8774",
        "HTTPS://Nova.Internal:8774",
        "http://10.0.0.5",
        "http://10.0.0.5:80",
        "https://10.0.0.5",
        "http://[fd00::5]:8774",
        "http://shim:9000",
        "http://other:8774",
        "http://docs.openstack.org",
    ]
)
_RESTS = st.sampled_from(["", "/", "/v2.1/", "/v2.1/flavors/1", "?marker=a%2Fb", "x", "#f"])


@st.composite
def _hrefs(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["", "/compute", "/a/b", "/computer"]))
    return draw(_SPELLINGS) + prefix + draw(_RESTS)


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_LINK = st.fixed_dictionaries({"href": _hrefs(), "rel": st.sampled_from(["self", "bookmark"])})
_JSON = json_trees(
    _SCALARS | _LINK | _hrefs(),
    keys=st.sampled_from(["links", "href", '"href', "name", "servers_links"]) | st.text(),
    width=4,
)
_DUMPS = st.sampled_from(
    [
        lambda doc: json.dumps(doc),
        lambda doc: json.dumps(doc, separators=(",", ":")),
        lambda doc: json.dumps(doc, indent=2, ensure_ascii=False),
    ]
)


def _split_host(host: str) -> tuple[str, int | None]:
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", int(rest[1:]) if rest else None
    name, _, port = host.partition(":")
    return name, int(port) if port else None


def _is_nova(href: str, hosts: list[str], prefix: str, public: str) -> str | None:
    """The rest after Nova's base if *href* is a link on it, else None (the reference)."""
    if href.lower().startswith(public.lower()) and href[len(public) : len(public) + 1] in (
        "",
        "/",
        "?",
        "#",
    ):
        return None
    scheme, sep, after = href.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    default = 80 if scheme.lower() == "http" else 443
    for host in hosts:
        name, port = _split_host(host.lower())
        for spelling in {f"{name}:{port or default}", *([name] if port in (None, default) else [])}:
            if after.lower().startswith(spelling):
                rest = after[len(spelling) :]
                if rest == prefix or rest.startswith((prefix + "/", prefix + "?", prefix + "#")):
                    return rest[len(prefix) :]
    return None


def _expected(doc: Any, hosts: list[str], prefix: str, public: str) -> Any:
    if isinstance(doc, list):
        return [_expected(item, hosts, prefix, public) for item in doc]
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            if key == "href" and isinstance(value, str):
                rest = _is_nova(value, hosts, prefix, public)
                out[key] = value if rest is None else public + rest
            else:
                out[key] = _expected(value, hosts, prefix, public)
        return out
    return doc


@given(
    doc=_JSON,
    dumps=_DUMPS,
    nova_host=_HOSTS,
    told=st.lists(_HOSTS, max_size=2),
    prefix=_PREFIXES,
    public=_PUBLICS,
)
@example(
    doc={"links": [{"href": "http://10.0.0.5:80/compute/v2.1/"}]},
    dumps=json.dumps,
    nova_host="10.0.0.5",
    told=[],
    prefix="/compute",
    public="https://c.example/pre/fix",
)
def test_every_nova_href_and_only_those_moved(
    doc: Any, dumps: Any, nova_host: str, told: list[str], prefix: str, public: str
) -> None:
    body = dumps(doc).encode()
    links = nova_links(f"http://{nova_host}{prefix}", public, tuple(told))
    out = links.body(body)
    assert json.loads(out) == _expected(doc, [nova_host, *told], prefix, public)
    if json.loads(out) == json.loads(body):
        assert out == body  # nothing to move: the very same bytes
    assert links.body(out) == out  # moved links are not moved again


@given(
    doc=_JSON,
    dumps=_DUMPS,
    nova_host=_HOSTS,
    prefix=_PREFIXES,
    public=_PUBLICS,
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_stream_equals_whole_for_any_split(
    doc: Any, dumps: Any, nova_host: str, prefix: str, public: str, cuts: list[int]
) -> None:
    body = dumps(doc).encode()
    links = nova_links(f"http://{nova_host}{prefix}", public, ("shim:9000",))
    points = sorted({cut % (len(body) + 1) for cut in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    stream = links.stream()
    out = b"".join(stream.feed(piece) for piece in pieces) + stream.end()
    assert out == links.body(body)


@given(data=st.binary(max_size=400), public=_PUBLICS)
def test_bytes_without_a_nova_href_pass_unchanged(data: bytes, public: str) -> None:
    links = nova_links("http://nova.internal:8774", public)
    if b'"href"' not in data:
        assert links.body(data) == data
        stream = links.stream()
        assert stream.feed(data) + stream.end() == data
