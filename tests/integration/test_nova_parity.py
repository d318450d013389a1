"""Differential tests: the same request to the real Nova 34 and to the shim, answers compared.

Both sit in front of the same Keystone and Glance (the stack's; the shim in gateway mode
with ``SHIM_NOVA_URL`` at the stack's Nova), and each case is sent to both. Status, body
(as JSON, links' bases normalised) and the headers Nova sets must agree, or differ only
as a declared deviation (`parity.DEVIATIONS`, docs/contract.md) explains. Cases come from
tables (every route under the four prefixes, every filter, microversion headers, auth
failures, metadata verbs, quota, delete) and from hypothesis (filter combinations, paging).
Run in both ``SHIM_AUTH=keystone`` and ``passthrough``; the counts per deviation are
printed in the terminal summary.
"""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from tests.fakes.shim_server import local_settings
from tests.integration.parity import (
    DEVIATIONS,
    GLANCE_STATUSES,
    REPORTED,
    Answer,
    Comparable,
    Evidence,
    Request,
    Verdict,
    comparable,
    describe,
    judge,
    mangled_property,
    tally,
)
from tests.integration.threaded_shim import shim_in_thread
from tests.shim_fixtures import TEST_PAGE_SIZE
from tests.stack.catalogue import INSTANCE_UUID, Catalogue
from tests.stack.fixtures import ScratchImages, report_line
from tests.stack.info import StackInfo
from tests.stack.nova import METADATA_ITEMS

pytestmark = pytest.mark.integration

MODES: Final = ("keystone", "passthrough")
PREFIXES: Final = ("/v2/{pid}", "/v2", "/v2.1/{pid}", "/v2.1")
MISSING_ID: Final = "3b0a6b52-6a4b-4bd8-9d25-2e0f4c2d7f11"
BROKEN: Final = ("bdm-invalid-json", "mappings-invalid-json")


# --- sending ---------------------------------------------------------------------------------


def send(base: str, request: Request, token: str | None) -> Answer:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
    target = request.path + (f"?{urlencode(request.query)}" if request.query else "")
    headers = {"Accept": "application/json", **dict(request.headers)}
    if token is not None:
        headers["X-Auth-Token"] = token
    if request.body is not None:
        headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(request.method, target, body=request.body, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        pairs = tuple((name.lower(), value) for name, value in resp.getheaders())
        return Answer(resp.status, pairs, body)
    finally:
        conn.close()


@dataclass(slots=True)
class Ledger:
    """Every verdict of a mode, and the undeclared differences found."""

    verdicts: list[Verdict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


_LEDGERS: dict[str, Ledger] = {mode: Ledger() for mode in MODES}


@dataclass(slots=True, repr=False)
class Differ:
    """Sends cases to Nova and to one shim, judges them, records the verdicts."""

    stack: StackInfo
    mode: str
    shim_url: str
    broken_ids: frozenset[str]
    nova_cache: dict[Request, Answer]

    def __repr__(self) -> str:
        return f"Differ({self.mode}, shim {self.shim_url})"

    def token(self, request: Request) -> str | None:
        if request.user is None:
            return None
        if request.user == "garbage":
            return "gAAAAAB-not-a-valid-token-at-all"
        return self.stack.token(request.user, request.project)

    def nova(self, request: Request) -> Answer:
        if request.method != "GET":
            return send(self.stack.nova_url, request, self.token(request))
        if request not in self.nova_cache:
            self.nova_cache[request] = send(self.stack.nova_url, request, self.token(request))
        return self.nova_cache[request]

    def shim(self, request: Request) -> Answer:
        return send(self.shim_url, request, self.token(request))

    def check(
        self,
        request: Request,
        *,
        nova_request: Request | None = None,
        twins: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[Comparable, Comparable, Verdict]:
        """Send `request` to both (Nova gets `nova_request` instead when its twin image
        differs), judge, record; return both comparables and the verdict."""
        nova_answer = self.nova(nova_request or request)
        shim_answer = self.shim(request)
        subs = dict(twins or {})
        nova = comparable(nova_answer, self.stack.nova_url, subs)
        shim = comparable(shim_answer, self.shim_url, {})
        counterpart = self._counterpart(request, nova, shim)
        evidence = Evidence(
            request, self.mode, counterpart, {"broken_ids": self.broken_ids, **(extra or {})}
        )
        return nova, shim, self.verdict_on(request, nova, shim, evidence)

    def verdict_on(
        self, request: Request, nova: Comparable, shim: Comparable, evidence: Evidence
    ) -> Verdict:
        """The verdict on one pair of answers, recorded in this mode's ledger."""
        verdict = judge(evidence, nova, shim)
        ledger = _LEDGERS[self.mode]
        ledger.verdicts.append(verdict)
        if not verdict.declared:
            ledger.failures.append(describe(request, nova, shim, verdict))
        return verdict

    def _counterpart(
        self, request: Request, nova: Comparable, shim: Comparable
    ) -> Comparable | None:
        if nova == shim:
            return None
        if any(mangled_property(k) for k in request.query_keys):
            query = tuple(
                (f"property-{mangled_property(k)}" if mangled_property(k) else k, v)
                for k, v in request.query
            )
            return comparable(self.shim(replace(request, query=query)), self.shim_url)
        statuses = [v for k, v in request.query if k == "status"]
        if statuses and statuses[-1].lower() in GLANCE_STATUSES:
            last = statuses[-1].lower()
            query = tuple((k, last if k == "status" else v) for k, v in request.query)
            return comparable(self.shim(replace(request, query=query)), self.shim_url)
        if request.method == "GET" and "/metadata" in request.path and request.query:
            return comparable(self.nova(replace(request, query=())), self.stack.nova_url)
        return None


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=MODES)
def differ(
    request: pytest.FixtureRequest, real_stack: StackInfo, catalogue: Catalogue
) -> Iterator[Differ]:
    mode: str = request.param
    shim_settings = local_settings(
        glance_url=URL(real_stack.glance_url),
        keystone_url=URL(real_stack.keystone_url),
        nova_url=URL(real_stack.nova_url),
        auth=mode,
        glance_page_size=TEST_PAGE_SIZE,
        glance_timeout=60.0,
        metadata_items=METADATA_ITEMS,
    )
    broken = frozenset(catalogue.ids[label] for label in BROKEN)
    cache: dict[Request, Answer] = request.config.stash.setdefault(_NOVA_CACHE, {})
    with shim_in_thread(shim_settings) as served:
        yield Differ(real_stack, mode, str(served.url), broken, cache)


_NOVA_CACHE = pytest.StashKey[dict[Request, Answer]]()


def pytest_terminal_summary_line(mode: str) -> str:
    counts = tally(_LEDGERS[mode].verdicts)
    declared = ", ".join(f"{d.id} {counts[d.id]}" for d in DEVIATIONS)
    reported = ", ".join(f"{d.id} {counts[d.id]}" for d in REPORTED)
    return (
        f"nova parity ({mode}): {counts['compared']} cases compared, {counts['same']} identical; "
        f"differing by declared deviation: {declared}; not in the contract (reported): "
        f"{reported}; undeclared: {counts['undeclared']}"
    )


@pytest.fixture(scope="module", autouse=True)
def _summary(pytestconfig: pytest.Config) -> Iterator[None]:
    yield
    for mode in MODES:
        if _LEDGERS[mode].verdicts:
            report_line(pytestconfig, pytest_terminal_summary_line(mode))


def run(differ: Differ, requests: Sequence[Request]) -> list[Verdict]:
    before = len(_LEDGERS[differ.mode].failures)
    verdicts = [differ.check(request)[2] for request in requests]
    failures = _LEDGERS[differ.mode].failures[before:]
    assert not failures, f"{len(failures)} undeclared difference(s):\n" + "\n".join(failures[:8])
    return verdicts


# --- building requests -----------------------------------------------------------------------


def path(
    stack: StackInfo, prefix: str, rest: str, user: str = "bob", pid: str | None = None
) -> tuple[str, str | None]:
    """The full path under `prefix`, with the user's own project id (or `pid`) where the
    prefix has one; returns (path, the pid used)."""
    own = stack.project_ids[stack.default_project(user)] if user in stack.user_ids else None
    used = (pid or own) if "{pid}" in prefix else None
    return prefix.format(pid=used) + rest, used


def req(
    stack: StackInfo,
    method: str,
    prefix: str,
    rest: str,
    *,
    user: str | None = "bob",
    pid: str | None = None,
    query: Sequence[tuple[str, str]] = (),
    headers: Sequence[tuple[str, str]] = (),
    body: object = None,
    raw_body: bytes | None = None,
    label: str = "",
) -> Request:
    who = user if user in stack.user_ids else "bob"
    full, used = path(stack, prefix, rest, who, pid)
    data = (
        raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
    )
    token_project = (
        stack.project_ids[stack.default_project(user)] if user in stack.user_ids else None
    )
    return Request(
        method, full, tuple(query), tuple(headers), data, user, None, used, token_project, label
    )


# --- reads: every route under every prefix ---------------------------------------------------


SHOWN: Final = (
    "public-admin", "cirros-active", "snapshot-of-vm", "status-queued", "status-saving",
    "status-deactivated", "status-uploading", "status-importing", "status-pending_delete",
    "status-deleted", "imported-direct", "community-a", "shared-b-accepted", "protected-a",
    "Ünïcødé образ 镜像 ✓", 'spaces, commas & "quotes"', "<unnamed>", "cirros-ami",
    "bdm-invalid-json", "mappings-invalid-json", "hidden-a", "status-killed", "private-b",
    "private-admin", "deleted-via-api",
)  # fmt: skip


def test_lists_and_shows_under_every_prefix(
    differ: Differ, real_stack: StackInfo, catalogue: Catalogue
) -> None:
    cases = []
    for index, prefix in enumerate(PREFIXES):
        for user in ("bob", "alice", ("dave", "admin")[index % 2]):
            for rest in ("/images", "/images/detail"):
                cases.append(req(real_stack, "GET", prefix, rest, user=user))
        # Every image under /v2.1/{pid}; a quarter of them under each other prefix.
        for number, label in enumerate(SHOWN):
            if prefix == "/v2.1/{pid}" or number % 4 == index:
                image = catalogue.ids[label]
                cases.append(req(real_stack, "GET", prefix, f"/images/{image}", user="alice"))
        for image in (MISSING_ID, "not-a-uuid", "x" * 40):
            cases.append(req(real_stack, "GET", prefix, f"/images/{image}", user="bob"))
    verdicts = run(differ, cases)
    assert sum(v.same for v in verdicts) > len(cases) // 2


FILTERS: Final[tuple[tuple[str, str], ...]] = (
    ("name", "cirros-active"), ("name", "no-such-image"),
    ("name", 'in:"cirros-active","public-admin"'), ("name", "bad:operator"),
    ("name", "Ünïcødé образ 镜像 ✓"), ("name", 'spaces, commas & "quotes"'),
    ("status", "ACTIVE"), ("status", "SAVING"), ("status", "ERROR"), ("status", "DELETED"),
    ("status", "UNKNOWN"), ("status", "active"), ("status", "queued"), ("status", "deactivated"),
    ("status", "bogus"),
    ("changes-since", "2000-01-01T00:00:00Z"), ("changes-since", "2000-01-01T00:00:00+01:00"),
    ("changes-since", "2999-01-01T00:00:00Z"), ("changes-since", "not-a-date"),
    ("server", INSTANCE_UUID), ("server", f"http://compute.example/servers/{INSTANCE_UUID}"),
    ("server", "x/"), ("type", "snapshot"), ("type", "backup"),
    ("minRam", "64"), ("minRam", "2048"), ("minRam", "abc"), ("minDisk", "1"), ("minDisk", "20"),
    ("property-os_distro", "cirros"), ("property-os_version", "12"),
    ("property-image_type", "snapshot"), ("property-hw_disk_bus", "virtio"),
    ("property-architecture", "x86_64"), ("property-instance_uuid", INSTANCE_UUID),
    ("property-nonexistent", "x"), ("foo", "bar"), ("sort_key", "name"),
    ("limit", "1"), ("limit", "5"), ("limit", "0"), ("limit", "-1"), ("limit", "abc"),
    ("limit", ""), ("limit", "1000"), ("limit", "2000"),
    ("marker", "not-a-uuid"), ("marker", MISSING_ID), ("marker", ""),
    ("page_size", "3"), ("page_size", "abc"), ("page_size", "0"), ("offset", "1"), ("offset", "x"),
)  # fmt: skip


def test_every_filter_on_list_and_detail(
    differ: Differ, real_stack: StackInfo, catalogue: Catalogue
) -> None:
    cases = []
    markers = [
        ("marker", catalogue.ids["cirros-active"]),
        ("marker", catalogue.ids["private-admin"]),
    ]
    for index, pair in enumerate((*FILTERS, *markers)):
        prefix = PREFIXES[index % len(PREFIXES)]
        for rest, user in (("/images/detail", "alice"), ("/images", ("bob", "alice")[index % 2])):
            cases.append(req(real_stack, "GET", prefix, rest, user=user, query=[pair]))
    run(differ, cases)


_FILTER_PAIRS = st.sampled_from(FILTERS[:38])
_PAGING = st.one_of(
    st.just(()),
    st.tuples(st.just("limit"), st.sampled_from(["1", "2", "3", "7", "25"])).map(lambda p: (p,)),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pairs=st.lists(_FILTER_PAIRS, min_size=1, max_size=4),
    paging=_PAGING,
    prefix=st.sampled_from(PREFIXES),
    rest=st.sampled_from(["/images", "/images/detail"]),
    user=st.sampled_from(["alice", "bob"]),
)
def test_filter_combinations(
    differ: Differ,
    real_stack: StackInfo,
    pairs: list[tuple[str, str]],
    paging: tuple[tuple[str, str], ...],
    prefix: str,
    rest: str,
    user: str,
) -> None:
    run(differ, [req(real_stack, "GET", prefix, rest, user=user, query=[*pairs, *paging])])


@pytest.mark.parametrize("limit", [3, 10, 25])
@pytest.mark.parametrize(("user", "query"), [("bob", ()), ("alice", (("status", "ACTIVE"),)),
                                             ("alice", (("minRam", "0"),))])  # fmt: skip
def test_paging_follows_next_links(
    differ: Differ, real_stack: StackInfo, limit: int, user: str, query: tuple[tuple[str, str], ...]
) -> None:
    """Page through with the shim's next links, sending each page to both."""
    request = req(real_stack, "GET", "/v2.1", "/images/detail", user=user,
                  query=[*query, ("limit", str(limit))])  # fmt: skip
    pages = 0
    failures = _LEDGERS[differ.mode].failures
    before = len(failures)
    seen: list[str] = []
    while pages < 40:
        _, shim, _ = differ.check(request)
        assert len(failures) == before, failures[-1]
        body = shim.body if isinstance(shim.body, dict) else {}
        seen += [image["id"] for image in body.get("images", [])]
        if not body.get("images_links"):
            break
        href = urlsplit(body["images_links"][0]["href"])
        assert href.path == "{compute}/v2.1/images/detail"
        request = replace(request, query=tuple(parse_qsl(href.query, keep_blank_values=True)))
        pages += 1
    assert pages < 40
    assert len(seen) == len(set(seen)) > 0


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    repeated=st.sampled_from(["name", "minRam", "limit", "status"]),
    values=st.lists(st.sampled_from(["1", "2", "64", "cirros-active", "ACTIVE", "10"]),
                    min_size=2, max_size=3),
)  # fmt: skip
def test_repeated_parameters(
    differ: Differ, real_stack: StackInfo, repeated: str, values: list[str]
) -> None:
    query = [(repeated, value) for value in values] + [("limit", "1")]
    run(differ, [req(real_stack, "GET", "/v2.1", "/images", user="bob", query=query)])


# --- microversions, auth, routing ----------------------------------------------------------


VERSION_HEADERS: Final[tuple[tuple[tuple[str, str], ...], ...]] = (
    (),
    (("OpenStack-API-Version", "compute 2.1"),),
    (("OpenStack-API-Version", "compute 2.35"),),
    (("OpenStack-API-Version", "compute 2.36"),),
    (("OpenStack-API-Version", "compute 2.38"),),
    (("OpenStack-API-Version", "compute 2.39"),),
    (("OpenStack-API-Version", "compute latest"),),
    (("OpenStack-API-Version", "compute 3.0"),),
    (("OpenStack-API-Version", "compute 2.0"),),
    (("OpenStack-API-Version", "compute 2.1000"),),
    (("OpenStack-API-Version", "compute 2"),),
    (("OpenStack-API-Version", "compute 2.01"),),
    (("OpenStack-API-Version", "compute Latest"),),
    (("OpenStack-API-Version", "volume 2.5, compute 2.3"),),
    (("OpenStack-API-Version", "compute 2.3, volume 2.50"),),
    (("OpenStack-API-Version", "volume 3.0"),),
    (("X-OpenStack-Nova-API-Version", "2.5"),),
    (("X-OpenStack-Nova-API-Version", "2.37"),),
    (("X-OpenStack-Nova-API-Version", "2.2, 2.4"),),
    (("X-OpenStack-Nova-API-Version", "bogus"),),
    (("OpenStack-API-Version", "compute 2.7"), ("X-OpenStack-Nova-API-Version", "2.36")),
)


def test_microversion_headers_and_faults(
    differ: Differ, real_stack: StackInfo, catalogue: Catalogue
) -> None:
    image = catalogue.ids["cirros-active"]
    cases = []
    routes = (
        "/images", f"/images/{image}", f"/images/{image}/metadata",
        f"/images/{image}/metadata/os_distro",
    )  # fmt: skip
    for index, headers in enumerate(VERSION_HEADERS):
        for rest in routes:
            cases.append(req(real_stack, "GET", "/v2.1", rest, user="alice", headers=headers))
        # /v2 ignores both headers: one route each is enough.
        rest = routes[index % len(routes)]
        cases.append(req(real_stack, "GET", "/v2/{pid}", rest, user="alice", headers=headers))
    run(differ, cases)


def test_auth_failures_and_foreign_projects(
    differ: Differ, real_stack: StackInfo, catalogue: Catalogue
) -> None:
    image = catalogue.ids["cirros-active"]
    reads = ("/images", "/images/detail", f"/images/{image}", f"/images/{image}/metadata")
    cases = [
        req(real_stack, "GET", prefix, rest, user=user)
        for prefix in PREFIXES
        for rest in reads
        for user in (None, "garbage", "carol", "bob")
    ]
    cases += [
        req(real_stack, "DELETE", prefix, f"/images/{image}", user=user)
        for prefix in PREFIXES
        for user in (None, "garbage")
    ]
    # alice naming bob's project
    cases += [
        req(real_stack, "GET", prefix, rest, user="alice", pid=real_stack.demo_b)
        for prefix in ("/v2/{pid}", "/v2.1/{pid}")
        for rest in ("/images", f"/images/{image}", f"/images/{image}/metadata")
    ]
    run(differ, cases)


def test_unroutable_paths_and_methods(
    differ: Differ, real_stack: StackInfo, catalogue: Catalogue
) -> None:
    image = catalogue.ids["cirros-active"]
    cases = []
    for prefix in PREFIXES:
        for method, rest in (
            ("GET", "/images/"), ("GET", "/images/detail/"), ("GET", f"/images/{image}/foo"),
            ("POST", "/images"), ("PUT", f"/images/{image}"), ("HEAD", "/images"),
            ("PATCH", f"/images/{image}"), ("DELETE", "/images/detail"),
            ("GET", f"/images/{image}/metadata/"),
        ):  # fmt: skip
            cases.append(req(real_stack, method, prefix, rest, user="alice"))
        # Nova >= 30 drops unknown parameters before it builds links, so only a known one
        # can carry the project id into the URL: a server href naming it.
        href = f"http://compute.example/{real_stack.demo_a}/servers/{INSTANCE_UUID}"
        for rest in ("/images", "/images/detail", f"/images/{image}"):
            for query in ([("server", href)], [("x", real_stack.demo_a)]):
                cases.append(req(real_stack, "GET", prefix, rest, user="alice", query=query))
    verdicts = run(differ, cases)
    assert sum(v.deviation == "D12" for v in verdicts) == 4


# --- metadata verbs, quota and delete: on twin images ------------------------------------------


TWIN_FIELDS: Final[dict[str, object]] = {
    "disk_format": "raw", "container_format": "bare", "min_ram": 16, "visibility": "private",
    "os_distro": "cirros", "hw_disk_bus": "virtio", "description": "twin",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Write:
    method: str
    rest: str  # after /images/{id}
    body: object = None
    raw_body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    fields: tuple[tuple[str, object], ...] = ()  # extra fields of both twins
    label: str = ""


def _many(n: int) -> dict[str, str]:
    return {f"key{i:03d}": "v" for i in range(n)}


WRITES: Final[tuple[Write, ...]] = (
    Write("GET", "/metadata"),
    Write("GET", "/metadata/os_distro"),
    Write("GET", "/metadata/missing"),
    Write("GET", "/metadata", label="query", headers=()),
    Write("POST", "/metadata", {"metadata": {"k1": "v1", "os_distro": "debian"}}),
    Write("POST", "/metadata", {"metadata": {}}),
    Write("POST", "/metadata", {"metadata": {"": "empty key"}}),
    Write("POST", "/metadata", {"metadata": {"bad/key": "v"}}),
    Write("POST", "/metadata", {"metadata": {"bad/key": "v", "good": "w"}}),
    Write("POST", "/metadata", {"metadata": {"bad/key": 5}}),
    Write("POST", "/metadata", {"metadata": {"k": 1}}),
    Write("POST", "/metadata", {"metadata": {"k": "x" * 256}}),
    Write("POST", "/metadata", {"metadata": {"k": "x" * 255, "k" * 255: "y"}}),
    Write("POST", "/metadata", {"other": {}}),
    Write("POST", "/metadata", {"metadata": {"k": "v"}, "extra": 1}),
    Write("POST", "/metadata", raw_body=b"{not json"),
    Write("POST", "/metadata", raw_body=b""),
    Write("POST", "/metadata", {"metadata": _many(METADATA_ITEMS - 3)}),
    Write("POST", "/metadata", {"metadata": _many(METADATA_ITEMS - 2)}),
    Write("POST", "/metadata", {"metadata": _many(METADATA_ITEMS + 1)}),
    Write("POST", "/metadata", {"metadata": {"name": "renamed"}}),
    Write("POST", "/metadata", {"metadata": {"visibility": "public"}}),
    Write("POST", "/metadata", {"metadata": {"protected": "true"}}),
    Write("POST", "/metadata", {"metadata": {"os_glance_x": "1"}}),
    Write("POST", "/metadata", {"metadata": {"k": "v"}}, fields=(("visibility", "shared"),)),
    Write("POST", "/metadata", {"metadata": {"k": "v"}}, fields=(("visibility", "community"),)),
    Write("PUT", "/metadata", {"metadata": {"a": "b", "os_distro": "x"}}),
    Write("PUT", "/metadata", {"metadata": {}}),
    Write("PUT", "/metadata", {"metadata": _many(METADATA_ITEMS)}),
    Write("PUT", "/metadata", {"metadata": _many(METADATA_ITEMS + 1)}),
    Write("PUT", "/metadata", {"meta": {"a": "b"}}),
    Write("PUT", "/metadata/os_distro", {"meta": {"os_distro": "fedora"}}),
    Write("PUT", "/metadata/newkey", {"meta": {"newkey": "v"}}),
    Write("PUT", "/metadata/k", {"meta": {"other": "v"}}),
    Write("PUT", "/metadata/k", {"meta": {"k": "v", "j": "w"}}),
    Write("PUT", "/metadata/k", {"meta": {"k": 5}}),
    Write("PUT", "/metadata/name", {"meta": {"name": "x"}}),
    Write("DELETE", "/metadata/os_distro"),
    Write("DELETE", "/metadata/missing"),
    Write("DELETE", ""),
    Write("DELETE", "", fields=(("protected", True),)),
    Write("POST", "/metadata", {"metadata": {"k": "v"}},
          headers=(("OpenStack-API-Version", "compute 2.38"),)),
    Write("POST", "/metadata", {"metadata": {"k": "v"}},
          headers=(("OpenStack-API-Version", "compute 2.39"),)),
    Write("DELETE", "", headers=(("OpenStack-API-Version", "compute 2.36"),)),
    Write("POST", "/metadata", {"metadata": {"k": "v"}}, headers=(("Content-Type", "text/plain"),)),
)  # fmt: skip


def _twin(twins: ScratchImages, owner: str, fields: dict[str, Any]) -> str:
    """A new image of *owner*'s, purged after the test: cached Nova list answers stay true."""
    return str(twins(owner, **fields)["id"])


@pytest.mark.parametrize("prefixes", [PREFIXES[2:], PREFIXES[:2]], ids=["v2.1", "v2"])
def test_metadata_verbs_quota_and_delete(
    differ: Differ,
    real_stack: StackInfo,
    scratch_images: ScratchImages,
    prefixes: tuple[str, ...],
) -> None:
    """Every write under /v2.1 (with and without project id, alternately), and again under
    /v2, whose relaxed body validation differs."""
    twins = scratch_images
    counts: Counter[str] = Counter()
    before = len(_LEDGERS[differ.mode].failures)
    for index, write in enumerate(WRITES):
        prefix = prefixes[index % 2]
        fields = {**TWIN_FIELDS, **dict(write.fields)}
        nova_image, shim_image = _twin(twins, "alice", fields), _twin(twins, "alice", fields)
        query = [("x", "1")] if write.label == "query" else []
        shim_req = req(real_stack, write.method, prefix, f"/images/{shim_image}{write.rest}",
                       user="alice", body=write.body, raw_body=write.raw_body,
                       headers=write.headers, query=query)  # fmt: skip
        nova_req = replace(shim_req, path=shim_req.path.replace(shim_image, nova_image))
        if write.method != "GET" and "visibility" in dict(write.fields):
            extra = {"visibility_before": fields["visibility"]}
            _, _, verdict = _check_with_state(
                differ, twins, shim_req, nova_req, nova_image, shim_image, extra
            )
        else:
            _, _, verdict = differ.check(
                shim_req, nova_request=nova_req, twins={nova_image: shim_image}
            )
        counts[verdict.deviation or ("same" if verdict.same else "undeclared")] += 1
    failures = _LEDGERS[differ.mode].failures[before:]
    assert not failures, f"{len(failures)} undeclared difference(s):\n" + "\n".join(failures[:8])
    assert counts["same"] >= len(WRITES) // 2


def _check_with_state(
    differ: Differ,
    twins: ScratchImages,
    shim_req: Request,
    nova_req: Request,
    nova_image: str,
    shim_image: str,
    extra: dict[str, Any],
) -> tuple[Comparable, Comparable, Verdict]:
    """A write whose effect on the image (its visibility) is compared too."""
    nova_answer = differ.nova(nova_req)
    shim_answer = differ.shim(shim_req)
    extra["visibility_nova"] = twins.api.get("alice", nova_image)["visibility"]
    extra["visibility_shim"] = twins.api.get("alice", shim_image)["visibility"]
    nova = comparable(nova_answer, differ.stack.nova_url, {nova_image: shim_image})
    shim = comparable(shim_answer, differ.shim_url)
    evidence = Evidence(shim_req, differ.mode, None, extra)
    return nova, shim, differ.verdict_on(shim_req, nova, shim, evidence)


def test_delete_of_images_the_caller_may_not_delete(
    differ: Differ, real_stack: StackInfo, catalogue: Catalogue
) -> None:
    """Refused deletes change nothing, so they can go to both on the same image."""
    cases = []
    for prefix in PREFIXES:
        for label, user in (("public-admin", "alice"), ("shared-b-accepted", "alice"),
                            ("private-b", "alice"), ("protected-a", "alice"),
                            ("cirros-active", "bob")):  # fmt: skip
            cases.append(req(real_stack, "DELETE", prefix, f"/images/{catalogue.ids[label]}",
                             user=user))  # fmt: skip
        cases.append(req(real_stack, "DELETE", prefix, f"/images/{MISSING_ID}", user="alice"))
        cases.append(req(real_stack, "DELETE", prefix, "/images/not-a-uuid", user="alice"))
    run(differ, cases)
