"""What happened during one request: the access line, request metrics, upstream timings.

* `observe_middleware` (outermost) matches the legacy route table once and stores the
  result on the request (``LEGACY_TARGET``, for the limits and dispatch), opens a
  `RequestRecord`: its route template, whether it is a legacy image route, and the
  caller's credentials bound for log redaction. It counts the request in flight.
* `note_upstream` is called by `shim.upstream` for every call to Glance, Keystone or Nova,
  timed (to its response headers, or its failure), counted in
  ``nova_image_shim_upstream_*`` and noted on the current record (a context variable, so
  GlanceClient, auth and the passthrough need no hook).
* `AccessLogger` (aiohttp's ``access_log_class``) writes exactly one line per request once
  the answer is sent, and records the request metrics. Requests that never finish
  normally (client gone, handler cancelled at shutdown) are logged by the middleware
  instead; requests aiohttp rejects before routing (malformed HTTP) have route
  ``malformed``.

Nothing here logs a header value, a query string (only its length) or a body.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Final

import aiohttp
import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from yarl import URL

from shim import metrics
from shim.faults import Handler
from shim.glance import glance_operation
from shim.keys import LEGACY_TARGET, MAX_VERSION, OBSERVED, SETTINGS
from shim.legacy.microversion import LEGACY_HEADER, STANDARD_HEADER
from shim.legacy.paths import LegacyTarget
from shim.legacy.table import match_legacy, route_label
from shim.observability import bind_request_secrets, scrub
from shim.record import RequestRecord, UpstreamCall
from shim.user_agents import client_label

ACCESS_LOGGER: Final = "shim.access"
log = structlog.get_logger(ACCESS_LOGGER)
_STDLIB_ACCESS: Final = logging.getLogger(ACCESS_LOGGER)

PASSTHROUGH_ROUTE: Final = "passthrough"
DISCOVERY_ROUTE: Final = "discovery"
NOT_FOUND_ROUTE: Final = "not_found"
MALFORMED_ROUTE: Final = "malformed"
CLIENT_CLOSED: Final = 499  # nginx's convention: the client went away before the answer
MAX_LOGGED_TEXT: Final = 256
_UPSTREAM_ID_RE: Final = re.compile(r"^req-[0-9a-f-]{36}$")
_DISCOVERY_PATHS: Final = frozenset({"/", "/v2", "/v2/", "/v2.1", "/v2.1/"})
_SECRET_HEADERS: Final = ("X-Auth-Token", "X-Subject-Token", "X-Service-Token", "Authorization")
_current: ContextVar[RequestRecord | None] = ContextVar("shim_request_record", default=None)


def route_of(method: str, path: str, *, passthrough: bool) -> tuple[str, bool]:
    """``(route label, is a legacy image route)`` for a request; labels are bounded.

    Legacy routes become templates such as ``/v2.1/{project_id}/images/detail``; every
    other request is ``passthrough`` (with a Nova upstream), or ``discovery`` /
    ``not_found`` (standalone).
    """
    return _route_for(match_legacy(method, path), method, path, passthrough=passthrough)


def _route_for(
    target: LegacyTarget | None, method: str, path: str, *, passthrough: bool
) -> tuple[str, bool]:
    if target is not None:
        return route_label(target), True
    if passthrough:
        return PASSTHROUGH_ROUTE, False
    if method in ("GET", "HEAD") and path in _DISCOVERY_PATHS:
        return DISCOVERY_ROUTE, False
    return NOT_FOUND_ROUTE, False


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    method, path = request.method, request.path
    target = match_legacy(method, path)
    if target is not None:
        request[LEGACY_TARGET] = target
    route, legacy = _route_for(target, method, path, passthrough=settings.nova_url is not None)
    loop = asyncio.get_running_loop()
    record = RequestRecord(route, legacy, loop.time(), request.app[MAX_VERSION])
    record.caller_projects_max = settings.caller_projects_max
    if target is not None and settings.auth == "passthrough":
        # Nobody vouches for the caller's project in this mode: the URL's is all there is.
        record.caller_project = target.project_id
    request[OBSERVED] = record
    # Each request runs in its own task (aiohttp copies the context per request), so these
    # need no reset: they end with the task, and still apply to the access line.
    _current.set(record)
    bind_request_secrets(
        value for name in _SECRET_HEADERS for value in request.headers.getall(name, ())
    )
    in_flight = metrics.get().in_flight
    in_flight.inc()
    try:
        return await handler(request)
    except (ConnectionError, asyncio.CancelledError) as exc:
        # No answer will be logged by aiohttp: the peer or the handler is gone.
        response = record.response
        status = response.status if response is not None else CLIENT_CLOSED
        size = request.writer.output_size  # what reached the socket before the end
        headers = response.headers if response is not None else None
        _emit(request, record, status, size, loop.time() - record.started, headers, exc)
        raise
    finally:
        in_flight.dec()


class AccessLogger(AbstractAccessLogger):
    """aiohttp's ``access_log_class``: one line and the request metrics per answer."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        record = request.get(OBSERVED)
        if record is not None and record.logged:
            return
        _emit(request, record, response.status, response.body_length, time, response.headers)


def _emit(
    request: BaseRequest,
    record: RequestRecord | None,
    status: int,
    size: int,
    seconds: float,
    headers: Mapping[str, str] | None,
    error: BaseException | None = None,
) -> None:
    route = record.route if record is not None else MALFORMED_ROUTE
    legacy = record is not None and record.legacy
    version = metrics.NO_VERSION
    if record is not None and headers is not None:
        version = metrics.microversion_label(_response_version(headers), record.max_version)
    user_agent = request.headers.get("User-Agent")
    client = client_label(user_agent)
    caller = None
    if record is not None and legacy:
        project = record.caller_project
        if project is not None and scrub(project) != project:
            project = None  # shaped like a credential, or this request's own token
        caller = (project, record.caller_projects_max)
    metrics.observe_request(
        route, request.method, status, version, seconds, client if legacy else None, caller
    )
    if record is not None:
        record.logged = True
    level = logging.WARNING if status >= 500 else logging.INFO
    if not _STDLIB_ACCESS.isEnabledFor(level):
        return  # e.g. SHIM_LOG_LEVEL=warning: the metrics above are all that is kept
    fields: dict[str, object] = {
        "method": request.method[:16],
        "route": route,
        "path": request.path[:MAX_LOGGED_TEXT],
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "bytes_sent": size,  # status line, headers and body, as aiohttp counts them
        "microversion": version,
        "client": client,
        "user_agent": (user_agent or "")[:MAX_LOGGED_TEXT],
        "remote": request.remote,
    }
    if query := request.rel_url.raw_query_string:
        fields["query_length"] = len(query)
    if record is not None:
        if record.project_id is not None:
            fields["project_id"] = record.project_id
        if record.user_id is not None:
            fields["user_id"] = record.user_id
        if record.call_count:
            last = record.calls[-1]
            fields["upstream_status"] = last.status if last.status is not None else last.outcome
            fields["upstream_ms"] = round(record.upstream_seconds * 1000, 3)
            fields["upstream_calls"] = record.call_count
            fields["upstream"] = [_call_fields(call) for call in record.calls]
            if last.request_id is not None:
                # What a passthrough client sees as its request id (Nova's), beside ours.
                fields["upstream_request_id"] = last.request_id
    if error is not None:
        fields["aborted"] = type(error).__name__
    log.log(level, "request", **fields)


def _call_fields(call: UpstreamCall) -> dict[str, object]:
    fields: dict[str, object] = {
        "service": call.service,
        "op": call.operation,
        "status": call.status if call.status is not None else call.outcome,
        "ms": round(call.seconds * 1000, 3),
    }
    if call.request_id is not None:
        fields["request_id"] = call.request_id
    return fields


def _response_version(headers: Mapping[str, str]) -> str | None:
    legacy = headers.get(LEGACY_HEADER)
    if legacy:
        return legacy
    standard = headers.get(STANDARD_HEADER)
    if standard and standard.lower().startswith("compute "):
        return standard[8:]
    return None


# --- upstream calls -----------------------------------------------------------------------


def _under(url: URL, base: URL | None) -> bool:
    if base is None:
        return False
    return (
        url.scheme == base.scheme
        and url.host == base.host
        and url.port == base.port
        and url.path.startswith(base.path.rstrip("/"))
    )


def classify_upstream(
    method: str, url: URL, *, nova: URL | None, keystone: URL | None
) -> tuple[str, str]:
    """``(upstream, operation)`` of a call; Glance is whatever is neither Nova nor Keystone
    (its URL may come from a token's catalogue)."""
    path = url.path.rstrip("/")
    if _under(url, nova):
        return "nova", "passthrough"
    if _under(url, keystone):
        if path.endswith("/v3/auth/tokens"):
            return "keystone", "validate" if method in ("GET", "HEAD") else "issue"
        return "keystone", "other"
    return "glance", glance_operation(method, url)


def outcome_of(status: int | None, error: BaseException | None = None) -> str:
    if status is not None:
        return f"{min(max(status // 100, 1), 5)}xx"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, aiohttp.ClientConnectorError):
        return "connect_error"
    return "error"


def note_upstream(
    service: str,
    operation: str,
    status: int | None,
    error: BaseException | None,
    seconds: float,
    request_id: str | None = None,
) -> None:
    outcome = outcome_of(status, error)
    metrics.observe_upstream(service, operation, outcome, seconds)
    record = _current.get()
    if record is not None:
        if request_id is not None and not _UPSTREAM_ID_RE.match(request_id):
            request_id = None  # only a well-formed id is logged, never arbitrary text
        record.add_call(UpstreamCall(service, operation, status, outcome, seconds, request_id))
