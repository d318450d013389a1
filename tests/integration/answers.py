"""Sending legacy requests to an in-process shim and checking whole answers.

`send` returns an `Answer` (status, headers, raw body); `expect_ok`, `expect_empty` and
`expect_fault` assert the whole body plus the headers every Nova answer carries: the exact
``Content-Type``, the request id pair, and the microversion headers and ``Vary`` lines of
a ``/v2.1`` request (none on ``/v2``, docs/nova.md §2.3-§2.4).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp.test_utils import TestClient
from multidict import CIMultiDictProxy

from tests.integration.parity import REQUEST_ID

Client = TestClient[Any, Any]
FAULT_TYPE: Final = "application/json; charset=UTF-8"
_UNSET: Final = object()


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def send(
    client: Client,
    method: str,
    path: str,
    token: str | None,
    *,
    body: Any = _UNSET,
    data: bytes | None = None,
    content_type: str | None = "application/json",
    version: str | None = None,
    headers: Mapping[str, str] | None = None,
    chunked: bool = False,
) -> Answer:
    """One request; *body* is sent as JSON, *data* as given; *version* as the standard header.

    *chunked* sends the body with chunked transfer encoding (no ``Content-Length``).
    """
    sent: dict[str, str] = {}
    if token is not None:
        sent["X-Auth-Token"] = token
    if version is not None:
        sent["OpenStack-API-Version"] = f"compute {version}"
    payload = data
    if body is not _UNSET:
        payload = orjson.dumps(body)
    if payload is not None and content_type is not None:
        sent["Content-Type"] = content_type
    sent.update(headers or {})
    data_arg: bytes | AsyncIterator[bytes] | None = payload
    if chunked and payload is not None:
        data_arg = _pieces(payload)
    async with client.request(method, path, headers=sent, data=data_arg) as response:
        return Answer(response.status, response.headers, await response.read())


async def _pieces(payload: bytes, size: int = 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


def check_headers(answer: Answer, content_type: str, version: str | None) -> None:
    headers = answer.headers
    assert headers["Content-Type"] == content_type
    request_id = headers["x-openstack-request-id"]
    assert REQUEST_ID.fullmatch(request_id), request_id
    assert headers.getall("x-compute-request-id") == [request_id]
    if version is None:
        assert "OpenStack-API-Version" not in headers
        assert "X-OpenStack-Nova-API-Version" not in headers
        assert "Vary" not in headers
    else:
        assert headers.getall("OpenStack-API-Version") == [f"compute {version}"]
        assert headers.getall("X-OpenStack-Nova-API-Version") == [version]
        assert headers.getall("Vary") == ["OpenStack-API-Version", "X-OpenStack-Nova-API-Version"]


def expect_ok(answer: Answer, body: Any, version: str | None = "2.1") -> None:
    """200 with exactly *body*."""
    assert (answer.status, answer.json()) == (200, body), answer.body
    check_headers(answer, "application/json", version)


def expect_empty(answer: Answer, version: str | None = "2.1") -> None:
    """204, no body, yet labelled JSON as Nova labels it."""
    assert (answer.status, answer.body) == (204, b""), answer.body
    check_headers(answer, "application/json", version)


def expect_fault(
    answer: Answer, status: int, name: str, message: str, version: str | None = "2.1"
) -> None:
    """A Nova fault with exactly this name, code and message."""
    assert answer.status == status, answer.body
    assert answer.json() == {name: {"code": status, "message": message}}
    check_headers(answer, FAULT_TYPE, version)


def hrefs(document: object) -> list[str]:
    """Every ``href`` in a JSON document, depth first."""
    if isinstance(document, dict):
        found = [document["href"]] if isinstance(document.get("href"), str) else []
        return found + [h for value in document.values() for h in hrefs(value)]
    if isinstance(document, list):
        return [h for value in document for h in hrefs(value)]
    return []


def version_for(prefix: str) -> str | None:
    """The version a request under *prefix* answers with when it sends no header."""
    return None if prefix.startswith("/v2/") or prefix == "/v2" else "2.1"
