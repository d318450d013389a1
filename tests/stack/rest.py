"""A small blocking JSON-over-HTTP client for talking to the stack's Keystone and Glance.

Built on the standard library's ``urllib`` so it imports nothing the test suite's warning
filters could trip on. It must not retry, log tokens or interpret status codes beyond
`expect`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypedDict

from tests.stack.procs import StackError

DEFAULT_TIMEOUT: Final = 60.0
JsonObject = dict[str, Any]  # Glance and Keystone documents: arbitrary JSON objects


class Body(TypedDict, total=False):
    """`request`'s keywords for what it sends (a JSON document, or `data` with its
    `content_type`), for callers that pass them on."""

    json_body: object
    data: bytes | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class Response:
    method: str
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> JsonObject:
        data = json.loads(self.body)
        if not isinstance(data, dict):
            raise StackError(f"{self.method} {self.url}: expected a JSON object, got {data!r}")
        return data

    def describe(self) -> str:
        text = self.body[:2000].decode(errors="replace")
        return f"{self.method} {self.url} -> {self.status}: {text}"


def request(
    method: str,
    url: str,
    *,
    token: str | None = None,
    json_body: object = None,
    data: bytes | None = None,
    content_type: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Response:
    """Send one request and return its response whatever the status (no exception on 4xx)."""
    all_headers = {"Accept": "application/json"}
    if token is not None:
        all_headers["X-Auth-Token"] = token
    body = data
    if json_body is not None:
        body = json.dumps(json_body).encode()
        all_headers["Content-Type"] = "application/json"
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    all_headers.update(headers or {})
    req = urllib.request.Request(url, data=body, headers=all_headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(method, url, resp.status, _lower(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Response(method, url, exc.code, _lower(exc.headers.items()), exc.read())
    except OSError as exc:
        raise StackError(f"{method} {url} failed: {exc!r}") from exc


def expect(resp: Response, *statuses: int) -> Response:
    """Return `resp` if its status is one of `statuses`; otherwise raise with its body."""
    if resp.status not in statuses:
        raise StackError(f"expected {statuses}: {resp.describe()}")
    return resp


def _lower(items: list[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}
