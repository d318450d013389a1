"""Fuzzing the running shim over the real Glance.

Two generators, one oracle:

* **schemathesis** reads ``docs/openapi.yaml`` (the description users get) and generates
  requests for all 40 operations (ten routes under four prefixes): parameters,
  microversion headers and metadata bodies;
* **hypothesis** builds raw HTTP/1.1 requests byte by byte, sent on a plain socket so
  nothing normalises them: hostile paths (dots, encoded separators, NUL, CRLF, raw UTF-8,
  tabs), query strings, header sets (microversions, forwarded headers, request ids, junk)
  and bodies (metadata-shaped, arbitrary JSON, garbage).

The oracle checks every answer: no 5xx (Glance is healthy, so nothing upstream can cause
one), a 401 is keystonemiddleware's body, any other error a Nova fault whose name and code
match the status, any success one of the OpenAPI success schemas (validated with
jsonschema against the document itself), and no answer echoes the token. At the end the
captured logs must hold no unhandled exception.

Metadata writes go only to scratch images; image deletes only to ids that do not exist.
The shim runs as production does (``shim.server.start``: the bounded-head handler) in a
thread of its own. ``SHIM_FUZZ_SCALE`` multiplies the example counts (CI size: 1).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.core.result import Ok
from yarl import URL

from shim.faults import FAULT_NAMES
from shim.server import Running, start
from shim.settings import Address, Settings
from tests.reliability.support import CANARY, Captured, capture
from tests.stack.fixtures import ScratchImages
from tests.stack.info import StackInfo

pytestmark = pytest.mark.integration

OPENAPI_PATH: Final = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
OPENAPI: Final[dict[str, Any]] = yaml.safe_load(OPENAPI_PATH.read_text())
SCALE: Final = float(os.environ.get("SHIM_FUZZ_SCALE", "1"))
SCHEMATHESIS_EXAMPLES: Final = int(650 * SCALE)
RAW_EXAMPLES: Final = int(1400 * SCALE)
MIN_REQUESTS: Final = 2000
REQUEST_TIMEOUT: Final = 15.0
SCRATCH_IMAGES: Final = 4
FAULT_CONTENT_TYPE: Final = "application/json; charset=UTF-8"
SUCCESS_CONTENT_TYPES: Final = ("application/json", "application/vnd.openstack.compute+json")
KEYSTONE_401: Final = {
    "error": {
        "code": 401,
        "title": "Unauthorized",
        "message": "The request you have made requires authentication.",
    }
}
SUCCESS_SCHEMAS: Final = ("ImageList", "ImageDetailList", "ImageShow", "Metadata", "MetaItem")

_REGISTRY: Final = Registry().with_resource(
    "urn:nova-image-shim:openapi",
    Resource.from_contents(OPENAPI, default_specification=DRAFT202012),
)


def validator(name: str) -> Draft202012Validator:
    ref = {"$ref": f"urn:nova-image-shim:openapi#/components/schemas/{name}"}
    return Draft202012Validator(ref, registry=_REGISTRY)


VALIDATORS: Final = {name: validator(name) for name in (*SUCCESS_SCHEMAS, "Fault")}


@dataclass
class Tally:
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)

    def add(self, status: int) -> None:
        self.requests += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1


@dataclass
class Fuzzed:
    """The shim under fuzz: its URL, the token, scratch images, what was logged and sent."""

    url: str
    port: int
    token: str
    project_id: str
    scratch_ids: tuple[str, ...]
    logs: Captured
    tally: Tally = field(default_factory=Tally)


def check_answer(
    fuzzed: Fuzzed, method: str, status: int, content_type: str, body: bytes, what: str
) -> None:
    """The oracle (module docstring). *what* describes the request for failures."""
    fuzzed.tally.add(status)
    assert status < 500, f"{status} without an upstream cause for {what}: {body[:300]!r}"
    assert CANARY.encode() not in body, what
    assert fuzzed.token.encode() not in body, what
    if method == "HEAD" or status in (204, 304):
        assert not body, what
        return
    if status == 401:
        assert json.loads(body) == KEYSTONE_401, what
        return
    if status >= 400:
        assert content_type == FAULT_CONTENT_TYPE, (what, content_type)
        document = json.loads(body)
        VALIDATORS["Fault"].validate(document)
        ((name, detail),) = document.items()
        assert name == FAULT_NAMES.get(status, "computeFault"), (what, document)
        assert detail["code"] == status, (what, document)
        return
    # Nova's two success types: JSON, or its vendor type when Accept prefers it.
    assert content_type.split(";")[0] in SUCCESS_CONTENT_TYPES, (what, content_type)
    document = json.loads(body)
    if isinstance(document, dict) and ("version" in document or "versions" in document):
        return  # standalone version discovery (docs/contract.md §1)
    errors = {name: list(VALIDATORS[name].iter_errors(document)) for name in SUCCESS_SCHEMAS}
    assert any(not found for found in errors.values()), (what, document, errors)


@pytest.fixture(scope="module")
def fuzzed(real_stack: StackInfo, tokens: dict[str, str]) -> Iterator[Fuzzed]:
    scratch = ScratchImages(real_stack)
    ids = tuple(
        scratch("alice", name=f"fuzz-{i}", os_distro="fuzz")["id"] for i in range(SCRATCH_IMAGES)
    )
    config = Settings(
        glance_url=URL(real_stack.glance_url),
        keystone_url=URL(real_stack.keystone_url),
        listen=Address("127.0.0.1", 0),
        metrics_listen=None,
        glance_page_size=3,
        workers=1,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzzed-shim", daemon=True)
    thread.start()
    try:
        with capture() as logs:
            running: Running = asyncio.run_coroutine_threadsafe(start(config), loop).result(30)
            try:
                yield Fuzzed(
                    url=f"http://127.0.0.1:{running.api_port}",
                    port=running.api_port,
                    token=tokens["alice"],
                    project_id=real_stack.demo_a,
                    scratch_ids=ids,
                    logs=logs,
                )
            finally:
                asyncio.run_coroutine_threadsafe(running.stop(), loop).result(60)
        assert not logs.unexpected(), logs.unexpected()[:5]
        logs.assert_no_canary()
        assert not [t for t in logs.texts() if tokens["alice"] in t]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        scratch.cleanup()


FUZZ_SETTINGS: Final = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
}

# ---- schemathesis ---------------------------------------------------------------------

SCHEMA: Final = schemathesis.openapi.from_path(str(OPENAPI_PATH))
MICROVERSION_HEADERS: Final = ("X-OpenStack-Nova-API-Version", "OpenStack-API-Version")
# Valid requests by the document, and requests that break it (wrong types, missing body...).
CASES: Final = SCHEMA.as_strategy() | SCHEMA.as_strategy(schemathesis.GenerationMode.NEGATIVE)


def test_openapi_describes_every_route_under_every_prefix() -> None:
    operations = set()
    for result in SCHEMA.get_all_operations():
        assert isinstance(result, Ok)
        operations.add((result.ok().method.upper(), result.ok().path))
    routes = [
        ("GET", "/images"),
        ("GET", "/images/detail"),
        ("GET", "/images/{image_id}"),
        ("DELETE", "/images/{image_id}"),
        ("GET", "/images/{image_id}/metadata"),
        ("POST", "/images/{image_id}/metadata"),
        ("PUT", "/images/{image_id}/metadata"),
        ("GET", "/images/{image_id}/metadata/{key}"),
        ("PUT", "/images/{image_id}/metadata/{key}"),
        ("DELETE", "/images/{image_id}/metadata/{key}"),
    ]
    prefixes = ("/v2.1/{project_id}", "/v2.1", "/v2/{project_id}", "/v2")
    assert operations == {(m, p + r) for p in prefixes for m, r in routes}
    assert OPENAPI["openapi"].startswith("3.1")


def test_schemathesis_cases_get_documented_answers(fuzzed: Fuzzed) -> None:
    session = requests.Session()
    before = fuzzed.tally.requests

    @settings(max_examples=SCHEMATHESIS_EXAMPLES, **FUZZ_SETTINGS)  # type: ignore[arg-type]
    @given(case=CASES, data=st.data())
    def run(case: Any, data: st.DataObject) -> None:  # a schemathesis.Case
        if "image_id" in case.path_parameters:
            method = case.method.upper()
            writes = method != "GET" and "metadata" in case.path
            # Metadata writes only ever touch scratch images; reads sometimes do.
            if writes or (method == "GET" and data.draw(st.booleans(), label="scratch")):
                ids = st.sampled_from(fuzzed.scratch_ids)
                case.path_parameters["image_id"] = data.draw(ids, label="image")
            if method == "DELETE" and "metadata" not in case.path:
                case.path_parameters["image_id"] = str(uuid.uuid4())  # never a real image
        if "project_id" in case.path_parameters and data.draw(st.booleans(), label="own pid"):
            case.path_parameters["project_id"] = fuzzed.project_id
        if case.headers is not None and data.draw(st.booleans(), label="no microversions"):
            for name in MICROVERSION_HEADERS:
                case.headers.pop(name, None)
        headers = {"X-Auth-Token": fuzzed.token}
        try:
            response = case.call(
                base_url=fuzzed.url, session=session, timeout=REQUEST_TIMEOUT, headers=headers
            )
        except (requests.exceptions.InvalidHeader, UnicodeError, ValueError):
            return  # not sendable by requests (a header value it refuses): not a request
        content_type = response.headers.get("content-type", [""])[0]
        check_answer(
            fuzzed,
            case.method.upper(),
            response.status_code,
            content_type,
            response.content or b"",
            f"{case.method} {case.formatted_path} {case.query} {case.headers} {case.body!r}",
        )

    run()
    session.close()
    assert fuzzed.tally.requests - before >= SCHEMATHESIS_EXAMPLES * 0.9


# ---- raw requests ----------------------------------------------------------------------

METHODS: Final = ["GET"] * 6 + ["DELETE", "POST", "PUT", "HEAD", "PATCH", "OPTIONS", "TRACE"]
PRINTABLE: Final = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
RAW_PIECES: Final = [
    "..",
    ".",
    "%2e%2e",
    "%2E",
    "%2F",
    "%2f..",
    "%00",
    "%0D%0A",
    "%0a",
    "%20",
    "%25",
    "%25%32%65",
    "%C3%A9",
    "%FF",
    "%c0%ae",
    "é",
    "\t",
    ";",
    "~",
    "+",
    "detail",
    "metadata",
    "images",
    "",
]


@st.composite
def raw_segment(draw: st.DrawFn, fuzzed: Fuzzed) -> str:
    return draw(
        st.one_of(
            st.sampled_from(RAW_PIECES),
            st.sampled_from(fuzzed.scratch_ids),
            st.just(str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1))))),
            st.text(PRINTABLE.filter(lambda c: c not in "/?# %"), max_size=12),
            st.lists(st.sampled_from(RAW_PIECES), max_size=3).map("".join),
        )
    )


@st.composite
def raw_path(draw: st.DrawFn, fuzzed: Fuzzed) -> str:
    prefix = draw(
        st.sampled_from(
            [
                "/v2.1",
                "/v2",
                f"/v2.1/{fuzzed.project_id}",
                f"/v2/{fuzzed.project_id}",
                "/v2.1/0123456789abcdef",
                "/v2.1/Demo",
                "/v2.1/",
                "//v2.1/",
                "/v2.10",
                "/V2.1",
                "",
            ]
        )
    )
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["/", "/v2", "/v2/", "/v2.1", "/v2.1/", "/v3", "/healthz"]))
    segments = draw(st.lists(raw_segment(fuzzed), max_size=4))
    path = prefix + draw(st.sampled_from(["/images", "/images", "//images", "/os-keypairs/images"]))
    return path + "".join("/" + s for s in segments)


QUERY_KEYS: Final = [
    "limit",
    "marker",
    "name",
    "status",
    "changes-since",
    "minRam",
    "minDisk",
    "server",
    "type",
    "page_size",
    "offset",
    "property-os_distro",
    "property-",
    "sort_key",
    "",
]
QUERY_VALUES: Final = st.one_of(
    st.sampled_from(
        [
            "1",
            "0",
            "-1",
            "2",
            "999999999999999999999",
            "abc",
            "",
            "ACTIVE",
            "SAVING",
            "queued",
            "in:a,b",
            'in:"a","b"',
            "gte:2020",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00+02:00",
            "%2B02:00",
            "%FF",
            "%",
            "%ZZ",
            "a%26limit%3D1",
            "%0D%0AX-Evil:%201",
        ]
    ),
    st.text(PRINTABLE.filter(lambda c: c not in "&#% "), max_size=16),
)


@st.composite
def raw_query(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS), QUERY_VALUES), max_size=5))
    query = "&".join(f"{k}={v}" for k, v in pairs)
    return draw(st.sampled_from(["", "?", "?" + query, "?" + query, "?" + query + "&&;"]))


HEADER_VALUE: Final = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
MICROVERSIONS: Final = st.one_of(
    st.sampled_from(
        [
            "2.1",
            "2.35",
            "2.36",
            "2.38",
            "2.39",
            "2.104",
            "2.105",
            "3.0",
            "2.0",
            "latest",
            "Latest",
            "2",
            "2.01",
            "v2.1",
            "",
            "2.1, 2.36",
        ]
    ),
    HEADER_VALUE,
)


@st.composite
def raw_headers(draw: st.DrawFn, fuzzed: Fuzzed) -> list[tuple[str, str]]:
    headers = [("Host", draw(st.sampled_from(["127.0.0.1", "evil.example", "x:1", ""])))]
    auth = draw(st.integers(0, 9))
    if auth < 8:
        headers.append(("X-Auth-Token", fuzzed.token))
    elif auth == 8:
        headers.append(("X-Auth-Token", f"{CANARY}-{draw(HEADER_VALUE).strip()}"))
    if draw(st.booleans()):
        headers.append(("X-OpenStack-Nova-API-Version", draw(MICROVERSIONS)))
    if draw(st.booleans()):
        headers.append(("OpenStack-API-Version", f"compute {draw(MICROVERSIONS)}"))
    extra = st.tuples(
        st.sampled_from(
            [
                "X-Forwarded-Host",
                "X-Forwarded-Proto",
                "Forwarded",
                "X-Openstack-Request-Id",
                "Accept",
                "Accept-Encoding",
                "Content-Type",
                "Expect",
                "Connection",
                "X-Junk",
            ]
        ),
        HEADER_VALUE,
    )
    headers += draw(st.lists(extra, max_size=4))
    return headers


JSON_VALUES: Final = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
METADATA_KEYS: Final = st.one_of(
    st.sampled_from(
        ["os_distro", "os_version", "name", "visibility", "os_glance_x", "k" * 256, ""]
    ),
    st.text(max_size=12),
)


@st.composite
def raw_body(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return b""
    if kind == 1:
        items = draw(st.dictionaries(METADATA_KEYS, st.text(max_size=30) | JSON_VALUES, max_size=4))
        wrapper = draw(st.sampled_from(["metadata", "meta", "other"]))
        return json.dumps({wrapper: items}).encode()
    if kind == 2:
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == 3:
        return draw(st.binary(max_size=64))
    return b'{"metadata": {"k": "' + b"v" * draw(st.integers(200, 300)) + b'"}}'


def send_raw(port: int, request: bytes, method: str) -> tuple[int, str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        body = response.read()
        return response.status, response.headers.get("Content-Type", ""), body


def test_raw_requests_get_nova_answers(fuzzed: Fuzzed) -> None:
    before = fuzzed.tally.requests

    @settings(max_examples=RAW_EXAMPLES, **FUZZ_SETTINGS)  # type: ignore[arg-type]
    @given(
        method=st.sampled_from(METHODS),
        path=raw_path(fuzzed),
        query=raw_query(),
        headers=raw_headers(fuzzed),
        body=raw_body(),
    )
    def run(
        method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        if method == "DELETE" and any(path.endswith(f"/images/{i}") for i in fuzzed.scratch_ids):
            path = path.rsplit("/", 1)[0] + "/" + str(uuid.uuid4())
        if method in ("POST", "PUT", "PATCH") and "metadata" in path:
            # Writes only to scratch images: any other id is replaced by one.
            parts = path.split("/")
            if "images" in parts:
                at = parts.index("images") + 1
                if at < len(parts) and parts[at] not in fuzzed.scratch_ids:
                    parts[at] = fuzzed.scratch_ids[0]
                path = "/".join(parts)
        target = (path or "/") + query
        lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
        lines += [f"Content-Length: {len(body)}", "Connection: close"]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
        status, content_type, answer = send_raw(fuzzed.port, request, method)
        check_answer(fuzzed, method, status, content_type, answer, repr(request[:400]))

    run()
    assert fuzzed.tally.requests - before >= RAW_EXAMPLES * 0.9


def test_fuzzing_sent_enough_requests(fuzzed: Fuzzed) -> None:
    """Runs last in this module: the CI-size run must have sent at least 2000 requests."""
    statuses = dict(sorted(fuzzed.tally.by_status.items()))
    print(f"fuzz: {fuzzed.tally.requests} requests, by status {statuses}")
    assert fuzzed.tally.requests >= MIN_REQUESTS * min(1.0, SCALE), statuses
    assert fuzzed.tally.by_status.get(200, 0) > 0
    assert fuzzed.tally.by_status.get(404, 0) > 0
    assert not [s for s in fuzzed.tally.by_status if s >= 500]
