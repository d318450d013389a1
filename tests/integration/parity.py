"""Differential comparison of a real Nova answer with the shim's answer to the same request.

Pure: answers in, a verdict out; no I/O. `comparable` reduces an answer to what a client
can rely on — status, the body as JSON (links with the server's own base replaced by
``{compute}``, other per-answer values by placeholders), and the headers Nova sets
(request ids present and well-formed, both microversion headers, ``Vary``, content type,
``WWW-Authenticate``). `judge` then says whether the two agree, or which declared deviation
(docs/contract.md: D1-D16, and P1 in passthrough mode) explains the difference. Each
deviation is a named, narrow predicate; anything else is undeclared and fails the test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

REQUEST_ID: Final = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
COMPARED_HEADERS: Final = (
    "content-type",
    "openstack-api-version",
    "x-openstack-nova-api-version",
    "vary",
    "www-authenticate",
)
UNEXPECTED_ERROR: Final = "Unexpected API Error."
NOVA_STATUS_FILTERS: Final = frozenset({"ACTIVE", "SAVING", "ERROR", "DELETED", "UNKNOWN"})
# Glance's own statuses: a lower-case one is sent to Glance as it is, by Nova and the shim.
GLANCE_STATUSES: Final = frozenset(
    {"queued", "saving", "active", "killed", "deleted", "pending_delete", "deactivated",
     "uploading", "importing"}
)  # fmt: skip
# What Nova's `str.lstrip("property-")` removes: any leading run of these characters.
_LSTRIP: Final = "property-"


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer as received: header names lower-case, repeated headers kept."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


@dataclass(frozen=True, slots=True)
class Request:
    """One request, sent identically to Nova and to the shim (bases differ)."""

    method: str
    path: str  # from the version prefix on, e.g. /v2.1/<pid>/images/detail
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    user: str | None = "bob"  # whose token; None: no token; "garbage": an invalid one
    project: str | None = None  # the token's project name (the user's default if None)
    pid: str | None = None  # the project id in the path, if any (for P1 and D12)
    token_project_id: str | None = None
    label: str = ""

    @property
    def query_keys(self) -> list[str]:
        return [key for key, _ in self.query]


@dataclass(frozen=True, slots=True)
class Comparable:
    status: int
    body: Any  # parsed JSON, or ("bytes", text) when the body is not JSON
    headers: Mapping[str, tuple[str, ...]]
    request_ids_ok: bool

    def fault(self) -> tuple[str, int, str] | None:
        """(name, code, message) of a Nova fault body, else None."""
        if isinstance(self.body, dict) and len(self.body) == 1:
            [(name, detail)] = self.body.items()
            if isinstance(detail, dict) and set(detail) >= {"code", "message"}:
                return name, detail["code"], detail["message"]
        return None

    def without(self, *keys: str) -> Comparable:
        body = self.body
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k not in keys}
        return replace(self, body=body)


def comparable(answer: Answer, base: str, substitutions: Mapping[str, str] = {}) -> Comparable:
    """`answer` reduced to what is compared; `base` (``http://host:port``) becomes
    ``{compute}``, and each key of `substitutions` (e.g. a twin image's id) its value."""
    text = answer.body.decode("utf-8", "replace")
    for old, new in {base: "{compute}", **substitutions}.items():
        text = text.replace(old, new)
    body: Any
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = ("bytes", text)
    headers = {name: tuple(answer.all(name)) for name in COMPARED_HEADERS}
    ids = answer.all("x-openstack-request-id") + answer.all("x-compute-request-id")
    ok = len(ids) == 2 and ids[0] == ids[1] and REQUEST_ID.fullmatch(ids[0]) is not None
    return Comparable(answer.status, body, headers, ok)


def differing_parts(nova: Comparable, shim: Comparable) -> list[str]:
    parts = [] if nova.status == shim.status else ["status"]
    parts += [f"header {n}" for n in COMPARED_HEADERS if nova.headers[n] != shim.headers[n]]
    if nova.request_ids_ok != shim.request_ids_ok:
        parts.append("request ids")
    if nova.body != shim.body:
        parts.append("body")
    return parts


# --- the declared deviations -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a predicate may look at beyond the two answers."""

    request: Request
    mode: str  # "keystone" or "passthrough"
    # The shim's answer to the request Nova effectively served (D1, D2), or Nova's answer
    # to the request without its query string (D7); None when the case has none.
    counterpart: Comparable | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


Predicate = Callable[[Evidence, Comparable, Comparable], bool]


@dataclass(frozen=True, slots=True)
class Deviation:
    id: str
    summary: str
    applies: Predicate


def _image_ids(body: Any) -> list[str] | None:
    if isinstance(body, dict) and isinstance(body.get("images"), list):
        return [image.get("id") for image in body["images"]]
    return None


def _same_but(nova: Comparable, shim: Comparable, *keys: str) -> bool:
    """Equal in status, headers and request ids, and in the body outside `keys`."""
    a, b = nova.without(*keys), shim.without(*keys)
    return differing_parts(a, b) == []


def mangled_property(key: str) -> str | None:
    """The Glance key Nova sent for ``property-<X>`` if it differs from ``<X>``."""
    if not key.startswith("property-"):
        return None
    exact, nova = key.removeprefix("property-"), key.lstrip(_LSTRIP)
    return None if exact == nova else nova


def _d1(ev: Evidence, nova: Comparable, shim: Comparable) -> bool:
    """property-X filters on X (the shim) vs on X with leading p,r,o,e,t,y,- removed (Nova):
    the shim, asked with Nova's mangled key, lists what Nova listed."""
    if not any(mangled_property(key) for key in ev.request.query_keys):
        return False
    cp = ev.counterpart
    return (
        cp is not None
        and _same_but(nova, shim, "images", "images_links")
        and nova.status == 200
        and _image_ids(cp.body) == _image_ids(nova.body)
    )


def _d2(ev: Evidence, nova: Comparable, shim: Comparable) -> bool:
    """status=SAVING|ERROR|DELETED|UNKNOWN (any case) filters on the Glance statuses shown
    so (the shim) vs on the lower-cased word (Nova). ``saving`` and ``deleted`` are Glance
    statuses too: the shim asked with the lower-case word lists what Nova listed; ``error``
    and ``unknown`` are none: Nova lists nothing."""
    statuses = [v for k, v in ev.request.query if k == "status"]
    if not statuses or statuses[-1].upper() not in NOVA_STATUS_FILTERS - {"ACTIVE"}:
        return False
    if statuses[-1] == "saving" or nova.status != 200:
        return False
    if not _same_but(nova, shim, "images", "images_links"):
        return False
    if statuses[-1].lower() in GLANCE_STATUSES:
        cp = ev.counterpart
        return cp is not None and _image_ids(cp.body) == _image_ids(nova.body)
    return _image_ids(nova.body) == []


def _raw_broken_json(body: Any) -> bool:
    """Some image's (or the metadata's) block_device_mapping or mappings is an invalid JSON
    string."""
    found: list[Any] = []
    if isinstance(body, dict):
        for key in ("images", "image", "metadata", "meta"):
            value = body.get(key)
            if isinstance(value, list):
                found += [v.get("metadata", {}) for v in value if isinstance(v, dict)]
            elif isinstance(value, dict):
                found.append(value.get("metadata", value) if key == "image" else value)
    for metadata in found:
        for key in ("block_device_mapping", "mappings"):
            value = metadata.get(key) if isinstance(metadata, dict) else None
            if isinstance(value, str):
                try:
                    json.loads(value)
                except ValueError:
                    return True
    return False


def _nova_500(nova: Comparable) -> bool:
    fault = nova.fault()
    return nova.status == 500 and fault is not None and fault[2].startswith(UNEXPECTED_ERROR)


def _d3(ev: Evidence, nova: Comparable, shim: Comparable) -> bool:
    """Invalid JSON in block_device_mapping/mappings: Nova 500 for the whole call, the shim
    the raw string (or, in a basic list, the image listed: ``extra["broken_ids"]``)."""
    fault = nova.fault()
    if fault is None or "JSONDecodeError" not in fault[2] or shim.status != 200:
        return False
    broken = ev.extra.get("broken_ids", frozenset())
    listed = _image_ids(shim.body) or []
    return _nova_500(nova) and (_raw_broken_json(shim.body) or bool(broken & set(listed)))


_D4_FAULTS: Final = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    409: "conflictingRequest",
    413: "overLimit",
}


def _d4(ev: Evidence, nova: Comparable, shim: Comparable) -> bool:
    """A Glance 4xx Nova turns into 500 keeps its meaning in the shim."""
    fault = shim.fault()
    if shim.status == 401:
        return _nova_500(nova) and isinstance(shim.body, dict) and "error" in shim.body
    return (
        _nova_500(nova)
        and fault is not None
        and _D4_FAULTS.get(shim.status) == fault[0]
        and ev.request.method in ("GET", "DELETE", "POST", "PUT")
    )


def _d5(ev: Evidence, nova: Comparable, shim: Comparable) -> bool:
    """A metadata write turns a shared or community image private in Nova, never in the
    shim: the answers agree, the image's visibility afterwards does not."""
    before = ev.extra.get("visibility_before")
    after_nova, after_shim = ev.extra.get("visibility_nova"), ev.extra.get("visibility_shim")
    return (
        differing_parts(nova, shim) == []
        and before in ("shared", "community")
        and after_nova == "private"
        and after_shim == before
    )


CORE_KEYS: Final = frozenset(
    {
        "name", "visibility", "min_ram", "min_disk", "protected", "tags", "status", "os_hidden",
        "owner", "id", "size", "virtual_size", "checksum", "container_format", "disk_format",
        "created_at", "updated_at", "self", "file", "schema", "direct_url", "locations",
        "os_hash_algo", "os_hash_value", "stores", "location", "deleted", "deleted_at",
    }
)  # fmt: skip


def _written_keys(request: Request) -> list[str]:
    try:
        document = json.loads(request.body or b"")
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    keys: list[str] = []
    for top in ("metadata", "meta"):
        value = document.get(top)
        if isinstance(value, dict):
            keys += list(value)
    return keys


def _d6(ev: Evidence, nova: Comparable, shim: Comparable) -> bool:
    """A metadata key that is a Glance core attribute or reserved: Nova ignores it, fails
    (500) or relays Glance's 403; the shim refuses it with a 400 naming the key."""
    fault = shim.fault()
    core = [k for k in _written_keys(ev.request) if k in CORE_KEYS or k.startswith("os_glance")]
    return (
        bool(core)
        and fault is not None
        and fault[:2] == ("badRequest", 400)
        and any(key in fault[2] for key in core)
        and nova.status in (200, 403, 500)
    )


def _d7(ev: Evidence, nova: Comparable, shim: Comparable) -> bool:
    """A query string on a metadata read: Nova 500, the shim ignores it (and answers what
    Nova answers without the query)."""
    cp = ev.counterpart
    return (
        ev.request.method == "GET"
        and "/metadata" in ev.request.path
        and bool(ev.request.query)
        and _nova_500(nova)
        and cp is not None
        and differing_parts(cp, shim) == []
    )


def _d9(ev: Evidence, nova: Comparable, shim: Comparable) -> bool:
    """A repeated parameter: Nova's next link carries the greatest value, the shim's the last
    (the one applied)."""
    keys = ev.request.query_keys
    repeated = {k for k in keys if keys.count(k) > 1}
    if not repeated or not _same_but(nova, shim, "images_links"):
        return False
    nova_q, shim_q = _next_query(nova.body), _next_query(shim.body)
    if nova_q is None or shim_q is None:
        return False
    for key in repeated:
        values = [v for k, v in ev.request.query if k == key]
        if nova_q.get(key) != max(values) or shim_q.get(key) != values[-1]:
            return False
    return {k: v for k, v in nova_q.items() if k not in repeated} == {
        k: v for k, v in shim_q.items() if k not in repeated
    }


def _next_query(body: Any) -> dict[str, str] | None:
    if not isinstance(body, dict):
        return None
    links = body.get("images_links")
    if not isinstance(links, list) or len(links) != 1:
        return None
    return dict(parse_qsl(urlsplit(links[0]["href"]).query, keep_blank_values=True))


def _d10(ev: Evidence, nova: Comparable, shim: Comparable) -> bool:
    """An unroutable path, method or trailing slash: webob's own 404 from Nova, a JSON
    itemNotFound fault from the shim (for HEAD, only the content type shows it)."""
    if nova.status != 404 or shim.status != 404 or nova.fault() is not None:
        return False
    if ev.request.method == "HEAD":
        return nova.body is None and shim.body is None
    return shim.fault() == ("itemNotFound", 404, "The resource could not be found.")


def _strip_pid(body: Any, pid: str) -> Any:
    if isinstance(body, dict):
        return {k: _strip_pid(v, pid) for k, v in body.items()}
    if isinstance(body, list):
        return [_strip_pid(v, pid) for v in body]
    if isinstance(body, str) and body.startswith("{compute}/"):
        return body.replace(f"/{pid}/", "/", 1)
    return body


def _d12(ev: Evidence, nova: Comparable, shim: Comparable) -> bool:
    """No project id in the path but in the query: Nova's links carry it (substring search
    of the whole URL), the shim's do not."""
    pid = ev.request.token_project_id
    if pid is None or ev.request.pid is not None:
        return False
    if not any(pid in value or pid in key for key, value in ev.request.query):
        return False
    return (
        nova.body != shim.body
        and differing_parts(replace(nova, body=_strip_pid(nova.body, pid)), shim) == []
    )


MALFORMED_URL: Final = "Malformed request URL: URL's project_id "


def _p1(ev: Evidence, nova: Comparable, shim: Comparable) -> bool:
    """Passthrough mode does not check the URL's project id: Nova's 400, the shim's answer
    as for any other path."""
    fault = nova.fault()
    return (
        ev.mode == "passthrough"
        and ev.request.pid is not None
        and ev.request.pid != ev.request.token_project_id
        and fault is not None
        and fault[:2] == ("badRequest", 400)
        and fault[2].startswith(MALFORMED_URL)
        and shim.status != 400
    )


_KEY: Final = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")


def _d16(ev: Evidence, nova: Comparable, shim: Comparable) -> bool:
    """On /v2 an object of only bad keys passes unchecked; Nova stores a non-string value as
    a string (200), the shim sends it as it came and Glance refuses it (400)."""
    if not ev.request.path.startswith("/v2/") or ev.request.method not in ("POST", "PUT"):
        return False
    try:
        document = json.loads(ev.request.body or b"")
    except ValueError:
        return False
    inner = document.get("metadata") if isinstance(document, dict) else None
    fault = shim.fault()
    return (
        isinstance(inner, dict)
        and bool(inner)
        and not any(_KEY.search(key) for key in inner)
        and any(not isinstance(value, str) for value in inner.values())
        and nova.status == 200
        and fault is not None
        and fault[:2] == ("badRequest", 400)
        and fault[2].startswith("HTTP 400 Bad Request")
    )


def _d15(nova: Comparable, shim: Comparable) -> bool:
    """``minRam``/``minDisk`` that is no 32-bit integer: the shim refuses it with a 400 before
    calling Glance. Nova sends it on and answers whatever Glance makes of the whole query
    first: its 500 from PostgreSQL, or a 400 for another parameter Glance checks earlier."""
    shim_fault = shim.fault()
    return (
        nova.status >= 400
        and shim_fault is not None
        and shim_fault[:2] == ("badRequest", 400)
        and shim_fault[2].startswith("Invalid input for query parameters min")
        and shim_fault[2].endswith("is not an integer from 0 to 2147483647")
    )


DEVIATIONS: Final[tuple[Deviation, ...]] = (
    Deviation("D1", "property-X filters on X, not on X with p,r,o,e,t,y,- stripped", _d1),
    Deviation("D2", "status filters on the Glance statuses shown as it", _d2),
    Deviation("D3", "invalid JSON in block_device_mapping/mappings shown raw, not 500", _d3),
    Deviation(
        "D15", "min_ram/min_disk that is no 32-bit integer: 400", lambda ev, n, s: _d15(n, s)
    ),
    Deviation("D4", "Glance 4xx keeps its meaning instead of 500", _d4),
    Deviation("D5", "metadata writes never change visibility", _d5),
    Deviation("D6", "core or reserved metadata keys refused with 400", _d6),
    Deviation("D7", "query parameters on metadata reads ignored, not 500", _d7),
    Deviation("D8", "one configured Glance URL in alternate links", lambda ev, n, s: False),
    Deviation("D9", "next link carries the applied value of a repeated parameter", _d9),
    Deviation("D10", "JSON itemNotFound for unroutable paths", _d10),
    Deviation("D11", "Glance unavailable: 503 with Retry-After", lambda ev, n, s: False),
    Deviation("D12", "project id in links iff the path has one", _d12),
    Deviation("D13", "malformed Glance answer: 502", lambda ev, n, s: False),
    Deviation("D16", "/v2: non-string value under only bad keys refused by Glance", _d16),
    Deviation("P1", "passthrough mode: URL project id not checked", _p1),
)
"""D8, D11 and D13 need a Glance the stack does not have (several servers, an unavailable
or a broken one): they are never matched here, and reported with 0 cases."""

REPORTED: Final[tuple[Deviation, ...]] = ()
"""Differences between Nova and the shim that the contract does not declare: named and
counted apart (docs/nova.md appendix E) until the contract decides. Each is as narrow as
the declared ones."""


@dataclass(frozen=True, slots=True)
class Verdict:
    same: bool
    deviation: str | None  # the id of the declared deviation that explains the difference
    parts: tuple[str, ...]  # what differs (empty when same)

    @property
    def declared(self) -> bool:
        return self.same or self.deviation is not None


def judge(evidence: Evidence, nova: Comparable, shim: Comparable) -> Verdict:
    parts = tuple(differing_parts(nova, shim))
    if not parts:
        # D5 shows only in the image's state afterwards.
        if evidence.extra and _d5(evidence, nova, shim):
            return Verdict(False, "D5", ("visibility afterwards",))
        return Verdict(True, None, ())
    for deviation in (*DEVIATIONS, *REPORTED):
        if deviation.applies(evidence, nova, shim):
            return Verdict(False, deviation.id, parts)
    return Verdict(False, None, parts)


def describe(request: Request, nova: Comparable, shim: Comparable, verdict: Verdict) -> str:
    """A failure message: the request and both answers, side by side."""
    query = "&".join(f"{k}={v}" for k, v in request.query)
    return (
        f"{request.method} {request.path}{'?' + query if query else ''} as {request.user} "
        f"[{request.label}]: undeclared difference in {', '.join(verdict.parts)}\n"
        f"  nova: {nova.status} {dict(nova.headers)} ids_ok={nova.request_ids_ok}\n"
        f"        {json.dumps(nova.body)[:700]}\n"
        f"  shim: {shim.status} {dict(shim.headers)} ids_ok={shim.request_ids_ok}\n"
        f"        {json.dumps(shim.body)[:700]}"
    )


def tally(verdicts: Sequence[Verdict]) -> dict[str, int]:
    """Counts: "compared", "same", one per deviation id (every declared id, 0 included, then
    the reported ones) and "undeclared"."""
    counts = {"compared": len(verdicts), "same": sum(v.same for v in verdicts)}
    for deviation in (*DEVIATIONS, *REPORTED):
        counts[deviation.id] = sum(v.deviation == deviation.id for v in verdicts)
    counts["undeclared"] = sum(not v.declared for v in verdicts)
    return counts
