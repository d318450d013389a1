"""Keeping every link in a passthrough answer on the shim: the pure rewrite.

Nova builds each link from the request it receives (``request.application_url``): the
``Host`` header and the scheme it was reached with, or, with ``[oslo_middleware]
enable_proxy_headers_parsing = True``, the ``X-Forwarded-Proto/-Host`` or ``Forwarded``
values the shim sent (docs/nova.md §4.7; nova/api/openstack/common.py and
oslo_middleware/http_proxy_to_wsgi.py). Either way a link names a host the client should
not follow to. `NovaLinks` turns such a link into one under the shim's public base:

* a base Nova could have used is any ``http``/``https`` origin whose host is Nova's own
  (from ``SHIM_NOVA_URL``) or one of the hosts the shim told Nova about, followed by Nova's
  path prefix (the path of ``SHIM_NOVA_URL``) and then ``/``, ``?``, ``#`` or the end;
* in a JSON body, only the value of an ``"href"`` member is looked at (Nova writes every
  link as ``{"href": ..., "rel": ...}``): its base is replaced, the rest of the value and
  every other byte of the body are kept as they were;
* in ``Location``, an absolute URL on such a base, or a path-absolute one under Nova's
  prefix, gets the public base (or its path) instead; anything else stays.

A body can be rewritten whole (:meth:`NovaLinks.body`) or piece by piece as it streams
(:meth:`NovaLinks.stream`, same result for any split). Which answers are looked at at all
is :func:`body_mode`'s decision. Nothing here does I/O.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from yarl import URL

from shim.headers import is_valid_host

# Nova answers whose body is held whole while its links are rewritten, so the answer keeps
# an exact Content-Length. Larger ones (or ones of unknown length) are rewritten as they
# stream, holding back only a possible partial link; they go out chunked.
BUFFERED_BODY_MAX: Final = 1024 * 1024
_SPACE: Final = rb"[ \t\r\n]{0,16}"
# A JSON member named href whose string value starts here. The look-behind (after the
# literal, which keeps the search fast) refuses an escaped quote, so a string that merely
# contains `"href"` never matches. Group 1 is what follows the key, up to the value.
_HREF_KEY: Final = rb'"href"(?<!\\"href")(' + _SPACE + rb":" + _SPACE + rb'")'
_DEFAULT_PORTS: Final = (("http", 80), ("https", 443))
_JSON_TYPE: Final = re.compile(r"^application/(?:[\w.+-]*\+)?json\s*(?:;|$)", re.IGNORECASE)
_NO_BODY_STATUSES: Final = frozenset({204, 304})

BodyMode = Literal["as-is", "whole", "stream"]


def body_mode(
    method: str,
    status: int,
    content_type: str | None,
    content_encoding: str | None,
    content_length: int | None,
) -> BodyMode:
    """How a passthrough answer's body is relayed.

    ``as-is``: streamed untouched (no body, not JSON, or encoded: a compressed body is
    never decoded). ``whole``: JSON of known length up to `BUFFERED_BODY_MAX`, read whole
    and rewritten. ``stream``: other JSON, rewritten as it streams.
    """
    if method == "HEAD" or status < 200 or status in _NO_BODY_STATUSES:
        return "as-is"
    if content_type is None or _JSON_TYPE.match(content_type) is None:
        return "as-is"
    if content_encoding is not None and content_encoding.strip().lower() not in ("", "identity"):
        return "as-is"
    if content_length is not None and content_length <= BUFFERED_BODY_MAX:
        return "whole"
    return "stream"


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``host[:port]`` → (host, port); brackets kept on IPv6; None if not a valid host."""
    if not is_valid_host(value):
        return None
    host, port = value, None
    if value.startswith("["):
        end = value.index("]")
        host, rest = value[: end + 1], value[end + 1 :]
        if rest:
            port = int(rest[1:])
    elif ":" in value:
        host, _, digits = value.rpartition(":")
        port = int(digits)
    return host.lower(), port


def _origins(hosts: Iterable[tuple[str, int | None]]) -> str:
    """Alternatives matching every spelling of an ``http(s)://host[:port]`` origin.

    webob leaves the port out when it is the scheme's default, and a host told without a
    port means the scheme's default: both spellings are accepted.
    """
    alternatives: list[str] = []
    for host, port in sorted(set(hosts), key=str):
        name = re.escape(host)
        for scheme, default in _DEFAULT_PORTS:
            if port is None or port == default:
                alternatives.append(f"{scheme}://{name}(?::{default})?")
            else:
                alternatives.append(f"{scheme}://{name}:{port}")
    return "(?i:" + "|".join(alternatives) + ")"


@dataclass(frozen=True, slots=True)
class NovaLinks:
    """The rewrite for one (Nova base, public base, told hosts) triple."""

    public: str
    """The shim's public base, no trailing slash (``https://compute.example.com/p``)."""
    public_path: str
    nova_path: str
    href: re.Pattern[bytes]
    href_replacement: bytes
    """``re`` template of ``href.sub``: the key, what followed it, the public base."""
    public_json: bytes
    """The public base as it appears inside a JSON string."""
    absolute: re.Pattern[str]
    longest_match: int
    """Bytes a match can span, its look-ahead included: what a stream holds back."""

    def body(self, data: bytes) -> bytes:
        """*data* with the base of every Nova ``href`` value replaced."""
        return self.href.sub(self.href_replacement, data)

    def stream(self) -> LinkStream:
        return LinkStream(self)

    def location(self, value: str) -> str:
        """A ``Location`` value on the shim's public base, or *value* if it is not Nova's."""
        match = self.absolute.match(value)
        if match is not None:
            return self.public + value[match.end() :]
        if value.startswith("/") and not value.startswith("//"):
            prefix = self.nova_path
            if self.public_path and _under(value, self.public_path):
                return value
            if _under(value, prefix):
                return (self.public_path + value[len(prefix) :]) or "/"
        return value


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + "/", prefix + "?", prefix + "#"))


class LinkStream:
    """Incremental `NovaLinks.body`: feed pieces, then `end`; the output joins to the same.

    Holds back at most ``longest_match`` bytes (a link that may continue in the next
    piece) plus one byte of context for the escaped-quote check.
    """

    __slots__ = ("_carry", "_links", "_start")

    def __init__(self, links: NovaLinks) -> None:
        self._links = links
        self._carry = b""
        self._start = 0  # where unsent bytes begin in the carry (1: a context byte kept)

    def feed(self, piece: bytes) -> bytes:
        data = self._carry + piece
        safe = len(data) - self._links.longest_match
        if safe <= self._start:
            self._carry = data
            return b""
        out, position = self._splice(data, safe)
        cut = max(position, safe)
        out.append(data[position:cut])
        self._carry = data[cut - 1 :]
        self._start = 1
        return b"".join(out)

    def end(self) -> bytes:
        data, self._carry = self._carry, b""
        if len(data) <= self._start:
            return b""
        out, position = self._splice(data, len(data))
        out.append(data[position:])
        return b"".join(out)

    def _splice(self, data: bytes, before: int) -> tuple[list[bytes], int]:
        """Unsent bytes up to the last link that starts before *before*, links moved."""
        out: list[bytes] = []
        position = self._start
        public = self._links.public_json
        for match in self._links.href.finditer(data, position):
            if match.start() >= before:
                break
            out += (data[position : match.start()], b'"href"', match[1], public)
            position = match.end()
        return out, position


@functools.lru_cache(maxsize=256)
def nova_links(nova_base: str, public_base: str, told_hosts: tuple[str, ...] = ()) -> NovaLinks:
    """The rewrite from links on *nova_base* (or on a host in *told_hosts*) to *public_base*.

    *told_hosts* are the ``host[:port]`` values the shim sent Nova in ``X-Forwarded-Host``
    or ``Forwarded``; invalid ones are ignored. Cached: a handful of triples per process.
    """
    nova = URL(nova_base, encoded=True)
    hosts: list[tuple[str, int | None]] = []
    if nova.raw_host:
        own = f"[{nova.raw_host}]" if ":" in nova.raw_host else nova.raw_host
        hosts.append((own.lower(), nova.explicit_port))
    for value in told_hosts:
        parsed = _split_host(value.strip())
        if parsed is not None:
            hosts.append(parsed)
    nova_path = nova.raw_path.rstrip("/")
    origins = _origins(hosts)
    tail = re.escape(nova_path)
    # Text, not a yarl URL: a client's Host header only has to be put back as it came.
    public_text = public_base.rstrip("/")
    authority_and_path = public_text.partition("://")[2]
    slash = authority_and_path.find("/")
    # JSON-encoded the way Nova writes strings (backslashes doubled again for the template).
    public_json = json.dumps(public_text)[1:-1].encode()
    # A link already on the public base is left alone (Nova with compute_link_prefix set to
    # the shim's URL, or a told host that is the public one): never a second prefix.
    public_re = f"(?i:{re.escape(public_text)})"
    kept = f'(?!{public_re}(?=[/?#"]))'
    href = re.compile(
        _HREF_KEY + (kept + origins + tail).encode("utf-8", "surrogateescape") + rb'(?=[/?#"])'
    )
    longest = 6 + 16 + 1 + 16 + 1 + len(kept) + len(origins) + len(tail) + 1
    return NovaLinks(
        public=public_text,
        public_path=authority_and_path[slash:] if slash >= 0 else "",
        nova_path=nova_path,
        href=href,
        href_replacement=b'"href"\\g<1>' + public_json.replace(b"\\", b"\\\\"),
        public_json=public_json,
        absolute=re.compile(f"(?!{public_re}(?=[/?#]|\\Z)){origins}{tail}(?=[/?#]|\\Z)"),
        longest_match=longest,
    )
