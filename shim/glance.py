"""GlanceClient: typed Glance v2 calls over the app's one ClientSession.

It owns the boundary: the caller's token and the shim's request id go out on every call,
and every Glance status or transport failure comes back as a Nova fault (docs/contract.md §5):

- 400 → 400 with Glance's text; 401 → 401 with keystonemiddleware's body (contract.md D4);
- 403 → 403: a list keeps Glance's text, a delete says "You are not allowed to delete the
  image.", any other call "Not authorized for image <id>.";
- 404 → 404 "Image not found." (a list answering 404 is malformed: 502);
- 409 → 409 on delete and patch, 413 → 413 on patch (contract.md D4); elsewhere 502;
- 5xx, refused, timed out → GETs are retried with jittered backoff inside one deadline,
  writes (DELETE, PATCH) are not retried by the shim; then 503 with Retry-After (contract.md D11);
- invalid JSON, the wrong shape, a body over SHIM_GLANCE_MAX_BODY → 502 "Invalid response
  from the image service" (contract.md D13).

"text" is what glanceclient would have said — ``HTTP <code> <reason>: <explanation>`` —
HTML-escaped as Nova does. No message ever includes the token.
"""

from __future__ import annotations

import asyncio
import html
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Literal
from urllib.parse import quote

import aiohttp
import orjson
import structlog
from yarl import URL

from shim.bodies import read_capped
from shim.faults import (
    BadRequest,
    BadUpstreamResponse,
    Conflict,
    Forbidden,
    ItemNotFound,
    OverLimit,
    ServiceUnavailable,
    Unauthorized,
)
from shim.legacy.views import FALLBACK_SCHEMA, ImageSchema, schema_from_glance
from shim.settings import Settings
from shim.tls import log_tls_failure, loggable_url, tls_failure

log = structlog.get_logger(__name__)

Operation = Literal["list", "show", "metadata", "delete", "patch"]
JSON_PATCH: Final = "application/openstack-images-v2.1-json-patch"
IMAGE_NOT_FOUND: Final = "Image not found."
UNAVAILABLE: Final = "The image service is unavailable. Please retry later."
_RETRY_STATUSES: Final = frozenset({500, 502, 503, 504})
_TAG_RE: Final = re.compile(r"<.+?>")
_BACKOFF_BASE: Final = 0.1
_BACKOFF_CAP: Final = 2.0
# A refused or reset connection, a body cut short, a timeout: the answer never arrived whole.
_TRANSPORT_ERRORS: Final = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: forwarded verbatim, never logged."""

    token: str | None
    request_id: str


@dataclass(frozen=True, slots=True)
class GlancePage:
    images: list[dict[str, Any]]
    next_marker: str | None


@dataclass(frozen=True, slots=True)
class GlanceAnswer:
    status: int
    reason: str
    content_type: str
    body: bytes
    www_authenticate: str | None


def explanation(answer: GlanceAnswer, secret: str | None = None) -> str:
    """glanceclient's rendering of a Glance error, HTML-escaped as Nova returns it.

    *secret* (the caller's token) is masked should Glance, or a proxy in front of it,
    repeat it: no fault message ever carries a token (contract.md §5).
    """
    details = ""
    if "json" in answer.content_type:
        try:
            doc = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            message = doc.get("message")
            if isinstance(message, str):
                details = _strip_html(message)
    elif answer.body:
        details = _strip_html(answer.body.decode("utf-8", "replace"))
    text = f"HTTP {answer.status} {answer.reason}"
    if details:
        text = f"{text}: {details}"
    if secret:
        text = text.replace(secret, "***")
    return html.escape(text, quote=True)


def quote_segment(value: str) -> str:
    """One opaque path segment: "/", "?", "#", CRLF and dots can reach no other Glance path.

    yarl's ``/`` would resolve ``..`` and keep ``/``; every reserved byte is escaped here,
    dots included (an id is a UUID; ``%2E`` only ever names a missing image).
    """
    return quote(value, safe="").replace(".", "%2E")


def _strip_html(text: str) -> str:
    seen: dict[str, None] = {}
    for line in text.splitlines():
        cleaned = _TAG_RE.sub("", line.strip()).strip()
        if cleaned:
            seen.setdefault(cleaned, None)
    return ": ".join(seen)


def to_fault(
    op: Operation,
    image_id: str | None,
    answer: GlanceAnswer,
    keystone: str | None,
    token: str | None = None,
) -> Exception:
    """Map a non-2xx Glance answer to the fault the operation owes the client."""
    status = answer.status
    if status == 401:
        return Unauthorized(keystone or answer.www_authenticate)
    if status == 400:
        return BadRequest(explanation(answer, token))
    if status == 403:
        if op == "list":
            return Forbidden(explanation(answer, token))
        if op == "delete":
            return Forbidden("You are not allowed to delete the image.")
        return Forbidden(f"Not authorized for image {image_id}.")
    if status == 404 and op != "list":
        return ItemNotFound(IMAGE_NOT_FOUND)
    if status == 409 and op in ("delete", "patch"):
        if op == "delete":
            return Conflict(f"Conflict deleting image. Reason: {explanation(answer, token)}.")
        return Conflict(explanation(answer, token))
    if status == 413 and op == "patch":
        return OverLimit(explanation(answer, token))
    return BadUpstreamResponse()


class GlanceClient:
    """Glance v2 over a shared session. One instance per app; holds the cached schema."""

    def __init__(self, session: aiohttp.ClientSession, settings: Settings, base: URL) -> None:
        self._session = session
        self._settings = settings
        self._base = base.with_path(base.path.rstrip("/"))
        self._images = self._base / "v2" / "images"
        self._schema_url = self._base / "v2" / "schemas" / "image"
        self._schema: ImageSchema | None = None
        self._keystone = (
            f'Keystone uri="{settings.keystone_url}"' if settings.keystone_url else None
        )

    @property
    def base(self) -> URL:
        return self._base

    async def schema(self, caller: Caller) -> ImageSchema:
        """Glance's image schema, fetched once; the built-in one while it cannot be read.

        An unreachable Glance is a `ServiceUnavailable` here too: falling back would only
        start a second deadline for the call that follows, which must fail the same way.
        """
        if self._schema is not None:
            return self._schema
        try:
            doc = await self._get_json("show", None, self._schema_url, caller)
        except (BadUpstreamResponse, ItemNotFound) as exc:
            # A wrong SHIM_GLANCE_URL (one ending in /v2, say) shows here first.
            log.warning(
                "glance_schema_unavailable",
                url=loggable_url(self._schema_url),
                status=exc.status,
                reason=exc.message,
            )
            return FALLBACK_SCHEMA
        if not isinstance(doc, dict):
            return FALLBACK_SCHEMA
        self._schema = schema_from_glance(doc)
        return self._schema

    async def list_page(
        self, caller: Caller, params: Sequence[tuple[str, str]], limit: int, marker: str | None
    ) -> GlancePage:
        query = [*params, ("limit", str(limit))]
        if marker is not None:
            query.append(("marker", marker))
        doc = await self._get_json("list", None, self._images.with_query(query), caller)
        images = doc.get("images") if isinstance(doc, dict) else None
        if not isinstance(images, list) or not all(isinstance(i, dict) for i in images):
            raise BadUpstreamResponse()
        next_marker = None
        next_href = doc.get("next")
        if isinstance(next_href, str) and images:
            next_marker = URL(next_href).query.get("marker") or str(images[-1].get("id"))
        return GlancePage(images, next_marker)

    async def show(self, caller: Caller, image_id: str, op: Operation = "show") -> dict[str, Any]:
        doc = await self._get_json(op, image_id, self._image_url(image_id), caller)
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
            raise BadUpstreamResponse()
        return doc

    async def delete(self, caller: Caller, image_id: str) -> None:
        answer = await self._send("DELETE", self._image_url(image_id), caller)
        if answer.status >= 300:
            raise to_fault("delete", image_id, answer, self._keystone, caller.token)

    async def patch(
        self, caller: Caller, image_id: str, operations: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        url = self._image_url(image_id)
        answer = await self._send("PATCH", url, caller, orjson.dumps(list(operations)))
        if answer.status >= 300:
            raise to_fault("patch", image_id, answer, self._keystone, caller.token)
        doc = _decode(answer.body)
        if not isinstance(doc, dict):
            raise BadUpstreamResponse()
        return doc

    def _image_url(self, image_id: str) -> URL:
        if "\x00" in image_id:
            # No image id holds a NUL, and Glance on PostgreSQL answers 500 to one
            # (contract.md D14): the answer any unknown id gets.
            raise ItemNotFound(IMAGE_NOT_FOUND)
        return self._images.with_path(
            f"{self._images.raw_path}/{quote_segment(image_id)}", encoded=True
        )

    def _headers(self, caller: Caller, body: bytes | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "X-Openstack-Request-Id": caller.request_id}
        if caller.token is not None:
            headers["X-Auth-Token"] = caller.token
        if body is not None:  # the one body the shim sends Glance: a JSON patch
            headers["Content-Type"] = JSON_PATCH
        return headers

    async def _get_json(self, op: Operation, image_id: str | None, url: URL, caller: Caller) -> Any:
        """GET with retries inside one deadline; a 2xx body decoded, anything else a fault."""
        settings = self._settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.glance_timeout
        attempt = 0
        while True:
            remaining = deadline - loop.time()
            try:
                answer = await self._fetch("GET", url, caller, remaining)
            except _TRANSPORT_ERRORS as exc:
                self._refuse_tls(url, exc)
                failure: str = type(exc).__name__
            else:
                if answer.status < 300:
                    return _decode(answer.body)
                if answer.status not in _RETRY_STATUSES:
                    raise to_fault(op, image_id, answer, self._keystone, caller.token)
                failure = f"status {answer.status}"
            attempt += 1
            pause = random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))  # noqa: S311
            where = _where("GET", url)
            if attempt > settings.glance_retries or loop.time() + pause >= deadline:
                log.warning("glance_unavailable", **where, attempts=attempt, failure=failure)
                raise ServiceUnavailable(UNAVAILABLE, retry_after=settings.retry_after)
            log.info("glance_retry", **where, attempt=attempt, failure=failure)
            await asyncio.sleep(pause)

    async def _send(
        self, method: str, url: URL, caller: Caller, body: bytes | None = None
    ) -> GlanceAnswer:
        """One write, sent once: no retries of our own, and none of aiohttp's (a blind
        retry could repeat a delete). A 5xx or a lost answer is a 503 (contract.md D11)."""
        try:
            answer = await self._fetch(method, url, caller, self._settings.glance_timeout, body)
        except _TRANSPORT_ERRORS as exc:
            self._refuse_tls(url, exc)
            failure: str = type(exc).__name__
        else:
            if answer.status not in _RETRY_STATUSES:
                return answer
            failure = f"status {answer.status}"
        log.warning("glance_unavailable", **_where(method, url), failure=failure)
        raise ServiceUnavailable(UNAVAILABLE, retry_after=self._settings.retry_after)

    def _refuse_tls(self, url: URL, error: BaseException) -> None:
        """A TLS failure is the deployment's (a CA, a host name, a client certificate):
        retrying cannot help, so it is a 503 at once, with its reason in one log line."""
        reason = tls_failure(error)
        if reason is not None:
            log_tls_failure("glance", url, reason)
            raise ServiceUnavailable(UNAVAILABLE, retry_after=self._settings.retry_after)

    async def _fetch(
        self, method: str, url: URL, caller: Caller, total: float, body: bytes | None = None
    ) -> GlanceAnswer:
        if total <= 0:
            raise TimeoutError
        timeout = aiohttp.ClientTimeout(
            total=total, connect=min(self._settings.connect_timeout, total)
        )
        async with self._session.request(
            method,
            url,
            headers=self._headers(caller, body),
            data=body,
            timeout=timeout,
            allow_redirects=False,
        ) as response:
            payload = await read_capped(response, self._settings.glance_max_body)
            if payload is None:
                raise BadUpstreamResponse()
            return GlanceAnswer(
                status=response.status,
                reason=response.reason or HTTPStatus(response.status).phrase,
                content_type=response.content_type,
                body=payload,
                www_authenticate=response.headers.get("WWW-Authenticate"),
            )


def glance_operation(method: str, url: URL) -> str:
    """A Glance call's name, as the access line and the upstream metrics spell it."""
    path = url.path.rstrip("/")
    if path.endswith("/v2/images"):
        return "list" if method == "GET" else "other"
    if path.endswith("/v2/schemas/image"):
        return "schema"
    if "/v2/images/" in path:
        return {"GET": "show", "DELETE": "delete", "PATCH": "patch"}.get(method, "other")
    return "other"


def _where(method: str, url: URL) -> dict[str, str]:
    """The fields that say which Glance call failed, as the access line names it."""
    return {"op": glance_operation(method, url), "url": loggable_url(url)}


def _decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadUpstreamResponse() from None
