"""Pure header helpers for the passthrough: hop-by-hop filtering, forwarding, Location.

Owns which fields a proxy may pass on (RFC 9110 §7.6.1), the ``X-Forwarded-*`` and ``Via``
fields the shim adds, when a client's own ``Forwarded``/``X-Forwarded-*`` fields are believed
(only from a peer in ``SHIM_TRUSTED_PROXIES``, RFC 7239 §8), and the base links start
with (:func:`link_base`; ``nova_links.py`` keeps Nova's links on it).

Headers are plain ``(name, value)`` pairs in wire order, repeated names kept. Nothing here
imports aiohttp or does I/O; the handler in ``passthrough.py`` feeds it request data.

Trust policy, in one place:

* an untrusted peer's ``Forwarded`` and ``X-Forwarded-For/-Proto/-Host`` are dropped and
  replaced with what the shim itself saw, so nothing a client invents reaches Nova as if a
  proxy had vouched for it, and none of it changes links;
* a trusted peer's ``X-Forwarded-For`` chain is kept and the peer appended, its
  ``Forwarded`` is kept, and ``-Proto``/``-Host`` carry the client view that
  :func:`client_scheme_host` derived.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Final

from yarl import URL

Header = tuple[str, str]
# Trusted proxies: addresses and CIDRs, parsed once at start-up (shim.setting_kinds).
Networks = frozenset[ipaddress.IPv4Network | ipaddress.IPv6Network]

# RFC 9110 §7.6.1 (plus the de-facto Proxy-Connection and Keep-Alive of RFC 2068/7230).
HOP_BY_HOP: Final[frozenset[str]] = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
# Not hop-by-hop, but never copied on a request: aiohttp derives Host from the target URL,
# and the shim's server already answered `100 Continue` (docs/proxying.md §1). Content-Length
# is kept: with decompression off on both sides the body is the client's bytes, so the
# length stays true and the upstream sees the same framing.
REQUEST_ONLY_DROPPED: Final[frozenset[str]] = frozenset({"host", "expect"})
FORWARDING: Final[frozenset[str]] = frozenset(
    {"forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
)
VIA_PSEUDONYM: Final = "nova-image-shim"

_SCHEMES: Final = frozenset({"http", "https"})
# RFC 3986 host (reg-name, IPv4, bracketed IPv6) with an optional port; no userinfo, path,
# spaces or quotes, so a forwarded host can never smuggle anything into a link.
_HOST_RE: Final = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
# RFC 7239 §4: forwarded-pair = token "=" ( token / quoted-string ), then ";" or ",".
# Unquoted values are read leniently (up to a separator) since proxies often skip quoting.
_PAIR_RE: Final = re.compile(
    r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[^;,"\s]*)\s*([;,]|$)'
)
_QUOTED_PAIR_RE: Final = re.compile(r"\\(.)")


def _connection_tokens(headers: Sequence[Header]) -> frozenset[str]:
    return frozenset(
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    )


def _filter(headers: Iterable[Header], extra: frozenset[str]) -> list[Header]:
    pairs = list(headers)
    dropped = HOP_BY_HOP | extra | _connection_tokens(pairs)
    return [(name, value) for name, value in pairs if name.lower() not in dropped]


def filter_request_headers(headers: Iterable[Header]) -> list[Header]:
    """Inbound headers a proxy may send on: no hop-by-hop, Connection-listed, Host or Expect."""
    return _filter(headers, REQUEST_ONLY_DROPPED)


def filter_response_headers(headers: Iterable[Header]) -> list[Header]:
    """Upstream headers a proxy may send back: no hop-by-hop or Connection-listed fields.

    ``Content-Length`` and ``Content-Encoding`` stay: the body is relayed undecoded.
    """
    return _filter(headers, frozenset())


def via_value(major: int, minor: int) -> str:
    """``Via`` element for a hop received with HTTP/major.minor (RFC 9110 §7.6.3)."""
    return f"{major}.{minor} {VIA_PSEUDONYM}"


def is_trusted(peer: str | None, trusted: Networks) -> bool:
    """Whether *peer* (an IP literal, possibly ``[v6]``) is in the trusted networks
    (``SHIM_TRUSTED_PROXIES``, parsed at start-up: an address is its own /32 or /128)."""
    if not peer or not trusted:
        return False
    try:
        address = ipaddress.ip_address(peer.strip().strip("[]").partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted)


def is_valid_host(value: str) -> bool:
    """A ``host[:port]`` that is safe to put in a link (RFC 3986 host, numeric port)."""
    return _HOST_RE.fullmatch(value) is not None


def _values(headers: Sequence[Header], name: str) -> list[str]:
    return [
        part.strip()
        for key, value in headers
        if key.lower() == name
        for part in value.split(",")
        if part.strip()
    ]


def _parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """Elements of one ``Forwarded`` field, or None if it is malformed."""
    elements: list[dict[str, str]] = [{}]
    position = 0
    while position < len(value):
        match = _PAIR_RE.match(value, position)
        if match is None or match.end() == position:
            return None
        name, raw, separator = match.groups()
        if raw.startswith('"'):
            raw = _QUOTED_PAIR_RE.sub(r"\1", raw[1:-1])
        elements[-1][name.lower()] = raw
        if separator == ",":
            elements.append({})
        position = match.end()
    return [element for element in elements if element]


def _forwarded_elements(headers: Sequence[Header]) -> list[dict[str, str]]:
    elements: list[dict[str, str]] = []
    for key, value in headers:
        if key.lower() == "forwarded":
            # A malformed line is ignored as a whole rather than half-believed.
            elements.extend(_parse_forwarded(value) or [])
    return elements


def _node_address(node: str) -> str:
    # RFC 7239 §6: node = nodename [ ":" node-port ], IPv6 in brackets.
    if node.startswith("["):
        return node[1:].partition("]")[0]
    return node.partition(":")[0] if node.count(":") == 1 else node


def client_scheme_host(
    peer: str | None,
    headers: Sequence[Header],
    scheme: str,
    host: str,
    trusted: Networks,
) -> tuple[str, str]:
    """The scheme and host the client used, for building links.

    From an untrusted peer this is the shim's own view (*scheme*, *host*): forwarded fields
    are ignored, never rejected. From a trusted peer, ``Forwarded`` wins over
    ``X-Forwarded-Proto``/``-Host``. Entries are read right to left: the last one was added
    by the trusted peer, and the walk moves further left only past hops whose own address
    is trusted, so a value a client put in front is never picked. Malformed values (a
    scheme other than http/https, a host that is not ``host[:port]``, an unparsable
    ``Forwarded`` line) are ignored field by field.
    """
    if not is_trusted(peer, trusted):
        return scheme, host
    proto_value: str | None = None
    host_value: str | None = None
    elements = _forwarded_elements(headers)
    if elements:
        index = len(elements) - 1
        while index > 0 and is_trusted(_node_address(elements[index].get("for", "")), trusted):
            index -= 1
        proto_value = elements[index].get("proto")
        host_value = elements[index].get("host")
    else:
        hops = 1
        for address in reversed(_values(headers, "x-forwarded-for")):
            if not is_trusted(address, trusted):
                break
            hops += 1
        protos = _values(headers, "x-forwarded-proto")
        hosts = _values(headers, "x-forwarded-host")
        proto_value = protos[-min(hops, len(protos))] if protos else None
        host_value = hosts[-min(hops, len(hosts))] if hosts else None
    if proto_value is not None and proto_value.lower() in _SCHEMES:
        scheme = proto_value.lower()
    if host_value is not None and is_valid_host(host_value):
        host = host_value
    return scheme, host


def forwarded_headers(
    existing: Iterable[Header],
    peer_ip: str | None,
    scheme: str,
    host: str,
    *,
    trusted: bool = False,
) -> list[Header]:
    """*existing* (already filtered) plus ``X-Forwarded-For/-Proto/-Host`` for this hop.

    *scheme* and *host* should come from :func:`client_scheme_host`. With ``trusted``
    false the peer's own forwarding fields (``Forwarded`` included) are dropped first;
    with it true ``Forwarded`` is kept and ``X-Forwarded-For`` becomes the peer's chain
    plus *peer_ip*. ``-Proto`` and ``-Host`` are always exactly one value, ours.
    """
    pairs = list(existing)
    chain = _values(pairs, "x-forwarded-for") if trusted else []
    removed = FORWARDING - {"forwarded"} if trusted else FORWARDING
    result = [(name, value) for name, value in pairs if name.lower() not in removed]
    if peer_ip:
        chain.append(peer_ip.strip("[]"))
    if chain:
        result.append(("X-Forwarded-For", ", ".join(chain)))
    result.append(("X-Forwarded-Proto", scheme))
    result.append(("X-Forwarded-Host", host))
    return result


def link_base(public_url: URL | None, scheme: str, host: str) -> str:
    """The base every link the shim hands out starts with, no trailing slash.

    ``SHIM_PUBLIC_URL`` when set, else the client's scheme and host (from
    :func:`client_scheme_host`): the one rule for the image routes' links and for the
    links kept on the shim in passthrough answers.
    """
    if public_url is not None:
        return str(public_url).rstrip("/")
    return f"{scheme}://{host}"


def told_hosts(headers: Sequence[Header]) -> tuple[str, ...]:
    """Hosts the outgoing *headers* tell the upstream it was reached at.

    ``X-Forwarded-Host`` values and ``Forwarded`` ``host=`` parameters: an upstream that
    parses them (Nova with ``enable_proxy_headers_parsing``) builds its links on them.
    """
    hosts = _values(headers, "x-forwarded-host")
    hosts += [element["host"] for element in _forwarded_elements(headers) if "host" in element]
    return tuple(dict.fromkeys(hosts))
